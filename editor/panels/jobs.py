"""Jobs panel (view only): one row per long job with a progress bar and a Cancel button."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.icons import icon


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "..." to the width it gets (the whole text in its tooltip),
    so a long job title never pushes the row's Cancel button out of a narrow panel."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(1)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        """The whole text (what is shown may be shortened)."""
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        super().setText(shown)


class JobRow(QWidget):
    """Title, state text, progress bar and Cancel button of one job."""

    def __init__(self, job_id: int, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = job_id
        self.title = ElidedLabel(title)
        self.title.setObjectName("job-title")
        self.message = ElidedLabel("queued")
        self.message.setObjectName("job-message")
        self.message.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(8)
        self.cancel = QToolButton()
        self.cancel.setIcon(icon("cancel"))
        self.cancel.setToolTip("Cancel this job")
        self.cancel.setAutoRaise(True)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)

    def set_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(round(fraction * 1000))
        if message:
            self.message.setText(message)

    def set_done(self, state: str, message: str) -> None:
        self.cancel.hide()
        if state == "done":
            self.bar.setValue(1000)
        self.message.setText(message or state)


class JobsPanel(QWidget):
    cancel_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("jobs-panel")
        self.list = QListWidget()
        self.list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows follow the width
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.rows: dict[int, tuple[QListWidgetItem, JobRow]] = {}
        self.empty = QLabel("No jobs yet. Long operations show their progress here.")
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove finished, failed and cancelled jobs from the list")
        self.clear_button.clicked.connect(self.clear_finished)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addLayout(bottom)
        self._finished: set[int] = set()
        self._sync()

    def add_job(self, job_id: int, title: str) -> None:
        """A row for a new job (newest on top)."""
        row = JobRow(job_id, title)
        row.cancel.clicked.connect(lambda: self.cancel_requested.emit(job_id))
        item = QListWidgetItem()
        item.setSizeHint(QSize(1, row.sizeHint().height()))  # as wide as the list (the labels elide)
        self.list.insertItem(0, item)
        self.list.setItemWidget(item, row)
        self.rows[job_id] = (item, row)
        self._sync()

    def set_running(self, job_id: int) -> None:
        if job_id in self.rows:
            self.rows[job_id][1].message.setText("running")

    def set_progress(self, job_id: int, fraction: float, message: str) -> None:
        if job_id in self.rows:
            self.rows[job_id][1].set_progress(fraction, message)

    def set_done(self, job_id: int, state: str, message: str = "") -> None:
        if job_id in self.rows:
            self.rows[job_id][1].set_done(state, message)
            self._finished.add(job_id)
        self._sync()

    def clear_finished(self) -> None:
        """Remove the rows of finished jobs."""
        for job_id in list(self._finished):
            item, _row = self.rows.pop(job_id)
            self.list.takeItem(self.list.row(item))
        self._finished.clear()
        self._sync()

    def _sync(self) -> None:
        self.empty.setVisible(not self.rows)
        self.list.setVisible(bool(self.rows))
        self.clear_button.setEnabled(bool(self._finished))
