"""Blocking file reads and writes off the GUI thread.

Saving a 4096 x 4096 project of three layers spends about ten seconds compressing PNGs. ``call_off_gui_thread``
runs such work on a helper thread while the GUI thread keeps painting and handling timers and queued signals (job
progress, the canvas), so the window never stops responding. User input meanwhile is dropped, as a modal
progress box would (presses, clicks, moves, wheel, shortcuts, drops; releases pass, so that no key or button
stays down): nothing can edit the document under the writer or start a second save, and nothing clicked in
impatience happens seconds later. PNG compression and numpy release the GIL, so the helper runs at full speed.

Given a :class:`FileProgress`, work that takes longer than half a second shows a small box with a progress bar and
Cancel (the only thing that takes clicks meanwhile). A cancelled write stops at its next check point (between
blocks of a PNG being encoded), removes its temporary file and leaves the old file as it was; a cancelled read is
abandoned (its thread finishes on its own and the result is dropped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, Qt, QThread
from PySide6.QtGui import QWindow
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

T = TypeVar("T")

_E = QEvent.Type
DROPPED_INPUT = frozenset(
    {
        _E.MouseButtonPress,
        _E.MouseButtonDblClick,
        _E.MouseMove,
        _E.Wheel,
        _E.KeyPress,
        _E.ShortcutOverride,
        _E.Shortcut,
        _E.ContextMenu,
        _E.TabletPress,
        _E.TouchBegin,
        _E.DragEnter,
        _E.DragMove,
        _E.Drop,
    }
)


class FileWorkCancelled(Exception):
    """The user cancelled a file read or write; nothing was changed."""


class FileProgress:
    """The progress of one file read or write, shared by the helper thread doing it and the GUI thread showing it.

    The helper calls it as ``progress(done, total)`` (``ganmodels.ora.Progress``; total 0 while it does not know
    how much there is, which keeps the bar busy); once the user has cancelled,
    that call raises :class:`FileWorkCancelled`, so a writer stops at its next check point. ``abandon``: on
    Cancel, stop waiting at once and drop the result (for reads, which change nothing).
    """

    def __init__(self, label: str, *, abandon: bool = False) -> None:
        self.label = label
        self.abandon = abandon
        self._lock = threading.Lock()
        self._done, self._total = 0, 0
        self._cancel = threading.Event()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total
        if self._cancel.is_set():
            raise FileWorkCancelled(f"{self.label} cancelled")

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def fraction(self) -> float | None:
        """Done / total, or None while the work has not said how much there is."""
        with self._lock:
            return self._done / self._total if self._total > 0 else None


class FileWorkDialog(QDialog):
    """The box of a long file read or write: what is going on, a progress bar and Cancel (Escape or closing the
    box cancel too)."""

    def __init__(self, progress: FileProgress, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = progress
        self.setWindowTitle("Please wait")
        self.setWindowModality(Qt.WindowModality.ApplicationModal)
        self.label = QLabel(progress.label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # (busy until the work says how much there is)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button, alignment=Qt.AlignmentFlag.AlignRight)
        self.setMinimumWidth(320)

    def reject(self) -> None:  # (Cancel, Escape, the close button): ask the work to stop; the caller closes the box
        if not self.progress.cancelled:
            self.progress.cancel()
            self.label.setText("Cancelling...")
            self.cancel_button.setEnabled(False)

    def update_bar(self) -> None:
        fraction = self.progress.fraction()
        if fraction is not None:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(1000 * min(max(fraction, 0.0), 1.0)))

    def owns(self, obj: QObject) -> bool:
        """Whether input to ``obj`` is meant for this box."""
        if isinstance(obj, QWidget):
            return obj.window() is self
        return isinstance(obj, QWindow) and obj is self.windowHandle()


class _DropInput(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.dialog: FileWorkDialog | None = None  # input to it passes

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() not in DROPPED_INPUT:
            return False
        return self.dialog is None or not self.dialog.owns(obj)


POLL_MS = 15  # the GUI thread looks for events this often while it waits
# (Through an event loop object: the static QCoreApplication.processEvents of PySide6 6.12 drops a reference to
# None on every call, and Python 3.11 aborts when None's count reaches zero, after some 10^4 calls.)


SHOW_AFTER_MS = 500  # work that takes longer than this shows its box


def call_off_gui_thread(
    fn: Callable[[], T], *, progress: FileProgress | None = None, show_after_ms: int | None = None
) -> T:
    """``fn()`` on a helper thread, the calling GUI thread processing non-input events until it returns; returns
    its result or raises its exception. Called from any other thread (or with no Qt application) it simply runs
    ``fn()``.

    With ``progress`` (which ``fn`` should call as it goes), a :class:`FileWorkDialog` shows after
    ``show_after_ms`` (default :data:`SHOW_AFTER_MS`); when the user cancels, a read (``progress.abandon``)
    raises :class:`FileWorkCancelled` at once, a write when ``fn`` stops (or returns normally, if it had already
    finished)."""
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return fn()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # (re-raised on the calling thread)
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="gan-editor-file-io", daemon=True).start()
    loop = QEventLoop()
    dropper = _DropInput()
    app.installEventFilter(dropper)
    start = time.perf_counter()
    if show_after_ms is None:
        show_after_ms = SHOW_AFTER_MS
    try:
        while not done.wait(POLL_MS / 1000):
            if progress is not None and isinstance(app, QApplication):
                if dropper.dialog is None and (time.perf_counter() - start) * 1000 >= show_after_ms:
                    dropper.dialog = FileWorkDialog(progress, QApplication.activeWindow())
                    dropper.dialog.show()
                    QApplication.setOverrideCursor(Qt.CursorShape.ArrowCursor)  # (over a caller's wait cursor)
                if dropper.dialog is not None:
                    dropper.dialog.update_bar()
                if progress.abandon and progress.cancelled:
                    raise FileWorkCancelled(f"{progress.label} cancelled")
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, POLL_MS)
    finally:
        app.removeEventFilter(dropper)
        if dropper.dialog is not None:
            QApplication.restoreOverrideCursor()
            dropper.dialog.hide()
            dropper.dialog.deleteLater()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
