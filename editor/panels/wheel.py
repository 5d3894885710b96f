"""Scrolling a panel must not change its controls: combo boxes take the wheel only after a click or Tab."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QWidget


class _WheelNeedsFocus(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()  # (the panel scrolls instead; a combo box would emit ``activated`` for every notch)
            return True
        return super().eventFilter(obj, event)


def wheel_needs_focus(*widgets: QWidget) -> None:
    """Let the mouse wheel change ``widgets`` only while they have the keyboard focus."""
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        guard = _WheelNeedsFocus(w)  # (owned by the widget)
        w.installEventFilter(guard)
