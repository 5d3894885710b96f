"""Model panel (view only): the loaded model's card and an Open button."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from editor.icons import icon

_BREAK_AFTER = str.maketrans({c: c + "\u200b" for c in "/_;="})


def breakable(text: str) -> str:
    """``text`` with zero-width spaces after / _ ; = so that a word-wrapped label can break paths and long
    names (e.g. "@lobehub/fluent-emoji-3d", "SWDx1e3_64") instead of cutting them off at a narrow dock."""
    return text.translate(_BREAK_AFTER)


class _WrappedLabel(QLabel):
    """A word-wrapped label for a card value: it may break after / _ ; = (:func:`breakable`) and keeps the height
    its text needs at its actual width (the form layout sizes rows by a width guess, which cut off the last line
    of a long value in a narrow dock); a newline starts a new line. ``text()`` is the value as given."""

    def __init__(self, text: str) -> None:
        super().__init__(html.escape(breakable(text)).replace("\n", "<br>"))  # (rich text: a newline is a space)
        self._plain = text
        self.setTextFormat(Qt.TextFormat.RichText)  # (measured as drawn: plain text ignores the break points)
        self.setWordWrap(True)

    def text(self) -> str:
        return self._plain

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        needed = self.heightForWidth(self.width())
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)


class ModelPanel(QWidget):
    open_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("model-panel")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.form_box = QWidget()
        self.form = QFormLayout(self.form_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.open_button = QPushButton(icon("open-model"), "Open model…")
        self.open_button.setToolTip("Load a GAN model, or add a direction file to the loaded one (Ctrl+Shift+M)")
        self.open_button.clicked.connect(self.open_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.status)
        layout.addWidget(self.form_box)
        layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.show_card({})

    def show_card(self, info: dict[str, str], tips: dict[str, str] | None = None) -> None:
        """Show label -> text pairs of a model card (``tips``: label -> tooltip); an empty dict shows the no-model
        state."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.values: dict[str, QLabel] = {}
        if not info:
            self.status.setText(
                "No model loaded. Open a model file (.safetensors) to generate samples and edit GAN layers."
            )
            self.status.show()
            self.form_box.hide()
            return
        self.status.hide()
        self.status.setText("")
        for key, text in info.items():
            value = _WrappedLabel(text)
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)  # wrap to the dock's width
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            if key == "File":
                value.setToolTip(text)
            elif tips and tips.get(key):
                value.setToolTip(tips[key])
            self.form.addRow(f"{key}:", value)
            self.values[key] = value
        self.form_box.show()
