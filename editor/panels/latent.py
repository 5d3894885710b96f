"""Latent panel (view only): seed, truncation and one slider per model direction for the active GAN layer.

Slider drags are reported as a gesture (``gesture_started`` ... values ... ``gesture_finished``); a change made
with the keyboard or wheel is a gesture of its own. ``LatentController`` renders and records them."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from editor.icons import icon

STRENGTH_RANGE = 3.0  # sliders span [-3, 3] * the direction's scale
SLIDER_STEPS = 300  # integer slider positions per side
TRUNCATION_MAX = 1.5
MAX_SEED = 2**31 - 1
KEY_GESTURE_PAUSE_MS = 600  # keyboard / wheel changes closer together than this are one undo step
NO_SEED = "\u2014"  # shown as the seed of a GAN layer that has none (an inverted picture)


@dataclasses.dataclass(frozen=True)
class DirectionInfo:
    name: str
    scale: float
    tooltip: str = ""


class _ValueSlider(QWidget):
    """A labelled horizontal slider over a float range; reports gestures and values."""

    value_changed = Signal(float)
    gesture_started = Signal()
    gesture_finished = Signal()

    def __init__(self, lo: float, hi: float, steps: int, *, decimals: int = 2, parent=None) -> None:
        super().__init__(parent)
        self.lo, self.hi, self.steps, self.decimals = lo, hi, steps, decimals
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, steps)
        self.slider.setPageStep(max(1, steps // 20))
        self.label = QLabel()
        self.label.setMinimumWidth(44)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._on_value)
        self.slider.sliderPressed.connect(self._on_pressed)
        self.slider.sliderReleased.connect(self.gesture_finished)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # (not by the wheel: see eventFilter)
        self.slider.installEventFilter(self)
        # Keys pressed in a row (arrows, Page Up / Down) are one gesture, hence one undo step: it ends after a pause
        # or when the slider loses the focus.
        self._key_gesture = False
        self._key_timer = QTimer(self)
        self._key_timer.setSingleShot(True)
        self._key_timer.setInterval(KEY_GESTURE_PAUSE_MS)
        self._key_timer.timeout.connect(self._end_key_gesture)
        self._show(self.value())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.slider:
            if event.type() == QEvent.Type.Wheel and not self.slider.hasFocus():
                event.ignore()  # the wheel scrolls the panel; it moves a slider only after a click or Tab on it
                return True
            if event.type() == QEvent.Type.FocusOut:
                self._end_key_gesture()
        return super().eventFilter(obj, event)

    def _on_pressed(self) -> None:
        self._end_key_gesture()
        self.gesture_started.emit()

    def _end_key_gesture(self) -> None:
        self._key_timer.stop()
        if self._key_gesture:
            self._key_gesture = False
            self.gesture_finished.emit()

    def value(self) -> float:
        return self.lo + (self.hi - self.lo) * self.slider.value() / self.steps

    def position_of(self, value: float) -> int:
        return round((min(max(value, self.lo), self.hi) - self.lo) / (self.hi - self.lo) * self.steps)

    def set_value(self, value: float) -> None:
        """Move without emitting."""
        self.slider.blockSignals(True)
        self.slider.setValue(self.position_of(value))
        self.slider.blockSignals(False)
        self._show(value)

    def _show(self, value: float) -> None:
        self.label.setText(f"{value:+.{self.decimals}f}" if self.lo < 0 else f"{value:.{self.decimals}f}")

    def _on_value(self, _pos: int) -> None:
        value = self.value()
        self._show(value)
        if self.slider.isSliderDown():
            self.value_changed.emit(value)
        else:  # keyboard, wheel or a click on the groove: changes in quick succession make one gesture
            if not self._key_gesture:
                self._key_gesture = True
                self.gesture_started.emit()
            self.value_changed.emit(value)
            self._key_timer.start()


class LatentPanel(QWidget):
    strength_changed = Signal(str, float)
    truncation_changed = Signal(float)
    gesture_started = Signal()
    gesture_finished = Signal()
    seed_chosen = Signal(int)
    new_sample_requested = Signal()
    reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("latent-panel")
        self.sliders: dict[str, _ValueSlider] = {}
        self.scales: dict[str, float] = {}

        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setObjectName("latent-title")

        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setToolTip("Seed of the selected GAN layer; change it to re-sample the layer")
        self.seed.setKeyboardTracking(False)
        self.seed.valueChanged.connect(self._on_seed)
        self.new_sample = QPushButton(icon("dice"), "New sample")
        self.new_sample.setToolTip("Add a GAN layer with a random seed")
        self.new_sample.clicked.connect(self.new_sample_requested)
        self.truncation = _ValueSlider(0.0, TRUNCATION_MAX, 150)
        self.truncation.setToolTip("Truncation psi: lower values are closer to the average image")
        self.truncation.value_changed.connect(self.truncation_changed)
        self.truncation.gesture_started.connect(self.gesture_started)
        self.truncation.gesture_finished.connect(self.gesture_finished)
        self.reset = QPushButton(icon("reset"), "Reset")
        self.reset.setToolTip("Set every direction of the layer back to 0")
        self.reset.clicked.connect(self.reset_requested)

        form = QFormLayout()
        form.addRow("Seed", self.seed)
        form.addRow("Truncation", self.truncation)

        self.directions_box = QWidget()
        self.directions_grid = QGridLayout(self.directions_box)
        self.directions_grid.setContentsMargins(0, 0, 0, 0)
        self.directions_grid.setColumnStretch(1, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.directions_box)
        self.no_directions = QLabel("This model has no directions.")
        self.no_directions.setEnabled(False)

        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.reset)

        self.editor = QWidget()
        edit_layout = QVBoxLayout(self.editor)
        edit_layout.setContentsMargins(0, 0, 0, 0)
        edit_layout.addLayout(form)
        edit_layout.addWidget(QLabel("Directions"))
        edit_layout.addWidget(self.no_directions)
        edit_layout.addWidget(scroll, 1)
        edit_layout.addLayout(bottom)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.new_sample, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(header)
        layout.addWidget(self.editor, 1)
        self.set_directions([], model_loaded=False)
        self.show_layer(None, "Open a model to generate and edit GAN layers.")

    # ----------------------------------------------------------------------------------------------------------
    # Called by the controller

    def end_key_gestures(self) -> None:
        """Finish a pending keyboard / wheel change now (before a save, an export or closing), so it is recorded."""
        for slider in [self.truncation, *self.sliders.values()]:
            slider._end_key_gesture()

    def set_directions(self, directions: list[DirectionInfo], *, model_loaded: bool = True) -> None:
        """One slider per direction, in the given order."""
        self.end_key_gestures()  # (a slider about to go still owes its gesture's end)
        while self.directions_grid.count():
            w = self.directions_grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.sliders.clear()
        self.scales.clear()
        for row in range(self.directions_grid.rowCount()):
            self.directions_grid.setRowStretch(row, 0)
        for row, d in enumerate(directions):
            label = QLabel(d.name)
            label.setToolTip(d.tooltip)
            span = STRENGTH_RANGE * d.scale
            slider = _ValueSlider(-span, span, 2 * SLIDER_STEPS)
            slider.setObjectName(f"direction-{d.name}")
            slider.setToolTip(d.tooltip)
            slider.set_value(0.0)
            slider.value_changed.connect(lambda v, name=d.name: self.strength_changed.emit(name, v))
            slider.gesture_started.connect(self.gesture_started)
            slider.gesture_finished.connect(self.gesture_finished)
            self.directions_grid.addWidget(label, row, 0)
            self.directions_grid.addWidget(slider, row, 1)
            self.sliders[d.name] = slider
            self.scales[d.name] = d.scale
        self.directions_grid.setRowStretch(len(directions), 1)
        self.no_directions.setVisible(model_loaded and not directions)

    def show_layer(self, title: str | None, message: str = "") -> None:
        """Enable editing for a GAN layer (``title``), or show why editing is not possible."""
        self.editor.setEnabled(title is not None)
        self.title.setText(title if title is not None else message)

    def set_values(self, *, seed: int | None, truncation: float, strengths: dict[str, float]) -> None:
        """Show a layer's latent state without emitting."""
        self.seed.blockSignals(True)
        if seed is None:  # e.g. an inverted picture: "—", not a seed 0 it does not have
            self.seed.setMinimum(-1)
            self.seed.setSpecialValueText(NO_SEED)
            self.seed.setValue(-1)
        else:
            self.seed.setSpecialValueText("")
            self.seed.setMinimum(0)
            self.seed.setValue(seed)
        self.seed.setEnabled(seed is not None)
        self.seed.blockSignals(False)
        self.truncation.set_value(truncation)
        for name, slider in self.sliders.items():
            slider.set_value(strengths.get(name, 0.0))

    def set_new_sample_enabled(self, enabled: bool) -> None:
        self.new_sample.setEnabled(enabled)

    def _on_seed(self, value: int) -> None:
        if value >= 0:
            self.seed_chosen.emit(value)
