"""Latent panel (view only): seed, truncation, one slider per model direction and a mix with another GAN layer
(which part of its latent, how much) for the active GAN layer.

Slider drags are reported as a gesture (``gesture_started`` ... values ... ``gesture_finished``); a change made
with the keyboard or wheel is a gesture of its own. ``LatentController`` renders and records them."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from editor.icons import icon
from editor.latent import MIX_PARTS
from editor.panels.wheel import wheel_needs_focus

STRENGTH_RANGE = 3.0  # sliders span [-3, 3] * the direction's scale
SLIDER_STEPS = 300  # integer slider positions per side
TRUNCATION_MAX = 1.5
MAX_SEED = 2**31 - 1
KEY_GESTURE_PAUSE_MS = 600  # keyboard / wheel changes closer together than this are one undo step
NO_SEED = "\u2014"  # shown as the seed of a GAN layer that has none (an inverted picture)
MIX_PART_LABELS = {  # what the mix part box shows
    "all": "Everything (morph)",
    "coarse": "Coarse: shape, kind, main colours",
    "middle": "Middle: features",
    "fine": "Fine: small details, shading",
}


@dataclasses.dataclass(frozen=True)
class DirectionInfo:
    name: str
    scale: float
    tooltip: str = ""
    ends: tuple[str, str] | None = None  # what the slider's - and + ends do (measured), shown under it


class _EndCaptions(QWidget):
    """Small grey words under a direction slider: what its left (-) and right (+) ends do, elided to fit (the full
    words are in the tooltip)."""

    def __init__(self, minus: str, plus: str, *, right_margin: int, parent=None) -> None:
        super().__init__(parent)
        self.minus, self.plus = f"\u2212 {minus}", f"{plus} +"
        self.right_margin = right_margin
        font = self.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        self.setFont(font)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(0, self.fontMetrics().height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def texts(self) -> tuple[str, str]:
        """The two captions as drawn at the current width (elided when both do not fit)."""
        fm = self.fontMetrics()
        width = max(0, self.width() - self.right_margin)
        gap = fm.horizontalAdvance("  ")
        left_w, right_w = fm.horizontalAdvance(self.minus), fm.horizontalAdvance(self.plus)
        room = width - gap
        if left_w + right_w <= room:
            return self.minus, self.plus
        # a short one keeps its words and the longer one gets the rest; else half each
        mode = Qt.TextElideMode.ElideRight
        if left_w <= room // 2:
            return self.minus, fm.elidedText(self.plus, mode, max(0, room - left_w))
        if right_w <= room // 2:
            return fm.elidedText(self.minus, mode, max(0, room - right_w)), self.plus
        half = max(0, room // 2)
        return fm.elidedText(self.minus, mode, half), fm.elidedText(self.plus, mode, half)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        left, right = self.texts()
        rect = self.rect().adjusted(0, 0, -self.right_margin, 0)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), left)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), right)


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
        wheel_needs_focus(self.slider)  # the wheel scrolls the panel; it moves a slider only after a click or Tab
        self.slider.installEventFilter(self)  # (focus out ends a key gesture)
        # Keys pressed in a row (arrows, Page Up / Down) are one gesture, hence one undo step: it ends after a pause
        # or when the slider loses the focus.
        self._key_gesture = False
        self._key_timer = QTimer(self)
        self._key_timer.setSingleShot(True)
        self._key_timer.setInterval(KEY_GESTURE_PAUSE_MS)
        self._key_timer.timeout.connect(self._end_key_gesture)
        self._show(self.value())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.slider and event.type() == QEvent.Type.FocusOut:
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
    mix_source_chosen = Signal(str)  # a layer id, or "" for no mix
    mix_part_chosen = Signal(str)  # one of MIX_PARTS
    mix_amount_changed = Signal(float)  # in [0, 1], within a gesture

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("latent-panel")
        self.sliders: dict[str, _ValueSlider] = {}
        self.scales: dict[str, float] = {}
        self.captions: dict[str, _EndCaptions] = {}  # direction name -> the words under its slider

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

        self.mix_source = QComboBox()
        self.mix_source.setObjectName("mix-source")
        self.mix_source.setToolTip("Blend in part of another GAN layer of the same model (a copy of its latent as it "
                                   "is now: later edits of that layer do not change this one)")  # fmt: skip
        self.mix_source.activated.connect(self._on_mix_source)
        self.mix_part = QComboBox()
        self.mix_part.setObjectName("mix-part")
        for part in MIX_PARTS:
            self.mix_part.addItem(MIX_PART_LABELS[part], part)
        self.mix_part.setToolTip(
            "Which part of the other layer's latent to take: the coarse rows (4-8 px) carry shape, kind and the main "
            "colours, the fine rows small details; everything morphs one picture into the other"
        )
        self.mix_part.activated.connect(lambda i: self.mix_part_chosen.emit(self.mix_part.itemData(i)))
        self.mix_amount = _ValueSlider(0.0, 1.0, 100)
        self.mix_amount.setObjectName("mix-amount")
        self.mix_amount.setToolTip("How far to go towards the other layer: 0 = this layer, 1 = that part of the other")
        self.mix_amount.value_changed.connect(self.mix_amount_changed)
        self.mix_amount.gesture_started.connect(self.gesture_started)
        self.mix_amount.gesture_finished.connect(self.gesture_finished)
        wheel_needs_focus(self.mix_source, self.mix_part)
        mix_form = QFormLayout()
        mix_form.addRow("Mix with", self.mix_source)
        mix_form.addRow("Take", self.mix_part)
        mix_form.addRow("Amount", self.mix_amount)
        self.set_mix_choices([], "", None)

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
        edit_layout.addLayout(mix_form)

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
        for slider in [self.truncation, self.mix_amount, *self.sliders.values()]:
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
        self.captions.clear()
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
            cell = QWidget()  # the slider, and under it what its ends do when that is known
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(0)
            column.addWidget(slider)
            if d.ends is not None:
                margin = slider.label.minimumWidth() + slider.layout().spacing()
                captions = _EndCaptions(*d.ends, right_margin=margin)
                captions.setToolTip(d.tooltip)
                column.addWidget(captions)
                self.captions[d.name] = captions
            self.directions_grid.addWidget(label, row, 0, Qt.AlignmentFlag.AlignTop)
            self.directions_grid.addWidget(cell, row, 1)
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

    def set_mix_choices(self, layers: list[tuple[str, str]], current_id: str, kept: str | None) -> None:
        """The GAN layers that can be mixed in ((id, name) pairs) and the current choice (``current_id``, "" for
        none); ``kept`` names a mix whose layer is gone or changed (shown as kept, not offered again)."""
        box = self.mix_source
        box.blockSignals(True)
        box.clear()
        box.addItem("Nothing", "")
        for layer_id, name in layers:
            box.addItem(name, layer_id)
        if kept is not None:
            box.addItem(f"{kept} (as it was)", None)
            box.setCurrentIndex(box.count() - 1)
        else:
            box.setCurrentIndex(max(box.findData(current_id), 0))
        box.blockSignals(False)

    def set_mix_values(self, *, part: str, amount: float, active: bool) -> None:
        """Show a layer's mix part and amount without emitting (greyed out while nothing is mixed in)."""
        self.mix_part.blockSignals(True)
        self.mix_part.setCurrentIndex(max(self.mix_part.findData(part), 0))
        self.mix_part.blockSignals(False)
        self.mix_amount.set_value(amount)
        self.mix_part.setEnabled(active)
        self.mix_amount.setEnabled(active)

    def set_new_sample_enabled(self, enabled: bool) -> None:
        self.new_sample.setEnabled(enabled)

    def _on_mix_source(self, index: int) -> None:
        layer_id = self.mix_source.itemData(index)
        if layer_id is not None:  # (None: the mix kept from a layer that is gone; choosing it changes nothing)
            self.mix_source_chosen.emit(layer_id)

    def _on_seed(self, value: int) -> None:
        if value >= 0:
            self.seed_chosen.emit(value)
