"""Model panel (view only): the loaded model's card and an Open button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from editor.icons import icon


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
        self.open_button.clicked.connect(self.open_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.status)
        layout.addWidget(self.form_box)
        layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.show_card({})

    def show_card(self, info: dict[str, str]) -> None:
        """Show label -> text pairs of a model card; an empty dict shows the no-model state."""
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
            value = QLabel(text)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            if key == "File":
                value.setToolTip(text)
            self.form.addRow(f"{key}:", value)
            self.values[key] = value
        self.form_box.show()
