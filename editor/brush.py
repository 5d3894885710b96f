"""The mask brush's settings: a small observable model shared by the canvas, toolbar and preferences."""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, Signal

MIN_SIZE, MAX_SIZE = 1.0, 1000.0
SIZE_STEP = 2 ** (1 / 4)  # [ and ] change the size by a quarter octave, like Krita
HARDNESS_STEP = 0.1  # one press of { or }


class BrushSettings(QObject):
    """Size (diameter in document pixels), hardness in [0, 1] and mode (paint or erase the mask)."""

    changed = Signal()

    def __init__(self, *, size: float = 40.0, hardness: float = 0.6, erase: bool = False, parent=None) -> None:
        super().__init__(parent)
        self._size = self._clamp_size(size)
        self._hardness = float(min(max(hardness, 0.0), 1.0))
        self._erase = bool(erase)

    @staticmethod
    def _clamp_size(size: float) -> float:
        return float(min(max(size, MIN_SIZE), MAX_SIZE))

    @property
    def size(self) -> float:
        return self._size

    @property
    def radius(self) -> float:
        return self._size / 2

    @property
    def hardness(self) -> float:
        return self._hardness

    @property
    def erase(self) -> bool:
        return self._erase

    def set_size(self, size: float) -> None:
        size = self._clamp_size(size)
        if size != self._size:
            self._size = size
            self.changed.emit()

    def set_hardness(self, hardness: float) -> None:
        hardness = float(min(max(hardness, 0.0), 1.0))
        if hardness != self._hardness:
            self._hardness = hardness
            self.changed.emit()

    def set_erase(self, erase: bool) -> None:
        if bool(erase) != self._erase:
            self._erase = bool(erase)
            self.changed.emit()

    def harder(self) -> None:
        """A tenth harder (up to a hard edge)."""
        self.set_hardness(round(self._hardness + HARDNESS_STEP, 2))

    def softer(self) -> None:
        """A tenth softer (down to the softest edge)."""
        self.set_hardness(round(self._hardness - HARDNESS_STEP, 2))

    def bigger(self) -> None:
        """One step larger (at least one pixel more)."""
        self.set_size(max(self._size + 1, math.floor(self._size * SIZE_STEP + 0.5)))

    def smaller(self) -> None:
        """One step smaller (at least one pixel less)."""
        self.set_size(min(self._size - 1, math.floor(self._size / SIZE_STEP + 0.5)))
