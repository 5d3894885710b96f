"""Small dialogs of the main window."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import shiboken6
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from editor.autosave import RecoveryChoice, RecoveryFile
from editor.icons import icon
from editor.panels.latent import MAX_SEED, TRUNCATION_MAX
from editor.qtimage import rgb_to_qimage

MAX_PTI_STEPS = 5000
BACKGROUNDS = {"White": (1.0, 1.0, 1.0, 1.0), "Black": (0.0, 0.0, 0.0, 1.0), "Transparent": None}


class NewDocumentDialog(QDialog):
    """Width, height and background of a new image."""

    def __init__(self, width: int, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New image")
        self.width_box, self.height_box = QSpinBox(), QSpinBox()
        for box, value in ((self.width_box, width), (self.height_box, height)):
            box.setRange(16, 8192)
            box.setSuffix(" px")
            box.setValue(value)
        self.background = QComboBox()
        self.background.addItems(list(BACKGROUNDS))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("Background", self.background)
        form.addRow(buttons)

    def values(self) -> tuple[int, int, tuple[float, float, float, float] | None]:
        return self.width_box.value(), self.height_box.value(), BACKGROUNDS[self.background.currentText()]


class ResizeImageDialog(QDialog):
    """Image > Resize Image: a new width and height, in proportion by default, within ``max_pixels``."""

    def __init__(self, width: int, height: int, *, max_pixels: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Resize image")
        self._size, self.max_pixels = (width, height), max_pixels
        self.width_box, self.height_box = QSpinBox(), QSpinBox()
        for box, value in ((self.width_box, width), (self.height_box, height)):
            box.setRange(1, 16384)
            box.setSuffix(" px")
            box.setValue(value)
        self.keep = QCheckBox("Keep proportions")
        self.keep.setChecked(True)
        self.note = QLabel()
        self.width_box.valueChanged.connect(lambda v: self._follow(self.width_box, v))
        self.height_box.valueChanged.connect(lambda v: self._follow(self.height_box, v))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("", self.keep)
        form.addRow(self.note)
        form.addRow(self.buttons)
        self._update_note()

    def _follow(self, box: QSpinBox, value: int) -> None:
        """With proportions kept, the other side follows the one just changed."""
        if self.keep.isChecked():
            w, h = self._size
            other, ratio = (self.height_box, h / w) if box is self.width_box else (self.width_box, w / h)
            other.blockSignals(True)
            other.setValue(max(1, round(value * ratio)))
            other.blockSignals(False)
        self._update_note()

    def _update_note(self) -> None:
        w, h = self.values()
        ok = w * h <= self.max_pixels
        limit = "" if ok else f": the editor handles up to {self.max_pixels // 10**6} MP"
        self.note.setText(f"{w * h / 1e6:.2f} MP{limit}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok and (w, h) != self._size)

    def values(self) -> tuple[int, int]:
        return self.width_box.value(), self.height_box.value()


class PivotalTuningDialog(QDialog):
    """Generate > Invert with Pivotal Tuning: what it does, and how many tuning steps (``steps`` to start with).
    ``masked``: the picture's mask will be left out of the inversion, which the dialog says."""

    def __init__(self, steps: int, *, masked: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Invert with pivotal tuning")
        text = (
            "Inverts the visible picture (its centred square) into a new GAN layer, then tunes a copy of the "
            "model's generator for that layer alone, so that it draws the picture more faithfully. The layer's "
            "sliders render with the tuned copy; every other layer keeps the model as it is."
        )
        if masked:
            text += " The masked part is left out: the layer is not made to match what the mask covers."
        self.about = QLabel(text)
        self.about.setWordWrap(True)
        self.storage = QLabel(
            "Tuned weights are kept in projects (File > Save Project); an exported PNG keeps the layer's latent, "
            "which renders with the untuned model. More steps: closer to the picture, and slower (the Jobs panel "
            "shows the progress and can cancel)."
        )
        self.storage.setWordWrap(True)
        self.steps = QSpinBox()
        self.steps.setRange(1, MAX_PTI_STEPS)
        self.steps.setSingleStep(10)
        self.steps.setSuffix(" steps")
        self.steps.setValue(min(max(int(steps), 1), MAX_PTI_STEPS))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Invert")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(self.about)
        form.addRow("Tuning", self.steps)
        form.addRow(self.storage)
        form.addRow(self.buttons)
        self.setMinimumWidth(420)

    def values(self) -> int:
        """The tuning steps chosen."""
        return self.steps.value()


class SampleDialog(QDialog):
    """Seed and truncation of a new GAN sample, and the class for a conditional model.

    ``class_fractions``: for a conditional model, how often each class occurs in its training data (one per
    class); the dialog then offers "From the seed" or one of the classes. ``anchors``: how many training pictures'
    latents the model carries (``ganmodels.anchors``); the dialog then offers to draw near one of them
    (``near_anchor``, the default) or a plain sample; switching sets the truncation to that way's default
    (``truncations``: (near, plain)).
    """

    def __init__(
        self,
        seed: int,
        truncation: float,
        random_seed: Callable[[], int],
        parent: QWidget | None = None,
        *,
        class_fractions: Sequence[float] = (),
        anchors: int = 0,
        near_anchor: bool = True,
        truncations: tuple[float, float] = (0.05, 0.7),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New sample from seed")
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(seed)
        dice = QPushButton(icon("dice"), "")
        dice.setToolTip("Random seed")
        dice.clicked.connect(lambda: self.seed.setValue(random_seed()))
        row = QHBoxLayout()
        row.addWidget(self.seed, 1)
        row.addWidget(dice)
        self.truncation = QDoubleSpinBox()
        self.truncation.setRange(0.0, TRUNCATION_MAX)
        self.truncation.setSingleStep(0.05)
        self.truncation.setValue(truncation)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.class_box: QComboBox | None = None
        form = QFormLayout(self)
        form.addRow("Seed", row)
        if class_fractions:
            self.class_box = QComboBox()
            self.class_box.addItem("From the seed", None)
            for k, fraction in enumerate(class_fractions):
                self.class_box.addItem(f"Class {k} ({100 * fraction:.1f} % of the training data)", k)
            self.class_box.setToolTip("The model draws one of the classes it was trained on; the seed picks one")
            form.addRow("Class", self.class_box)
        self.near_box: QCheckBox | None = None
        if anchors:
            self.near_box = QCheckBox(f"Near one of {anchors} training pictures")
            self.near_box.setChecked(near_anchor)
            self.near_box.setToolTip(
                "On: the sample is drawn close to the latent of a training picture the seed picks (recognisable "
                "subjects; truncation pulls towards that picture). Off: a free sample of the generator (more "
                "varied, less often recognisable)."
            )
            self.near_box.toggled.connect(lambda on: self.truncation.setValue(truncations[0 if on else 1]))
            form.addRow("Draw", self.near_box)
        form.addRow("Truncation", self.truncation)
        form.addRow(buttons)

    def set_class_previews(self, images: np.ndarray) -> None:
        """Show uint8 [K, R, R, 3] pictures (one per class) as the class items' icons (nothing once the dialog has
        been closed and deleted: the previews may arrive later)."""
        if self.class_box is None or not shiboken6.isValid(self.class_box):
            return
        for k, img in enumerate(images[: self.class_box.count() - 1]):
            self.class_box.setItemIcon(k + 1, QIcon(QPixmap.fromImage(rgb_to_qimage(img))))
        self.class_box.setIconSize(QSize(32, 32))

    def values(self) -> tuple[int, float, int | None, bool]:
        """(seed, truncation, class index or None for the seed's own class, near a training picture)."""
        class_index = self.class_box.currentData() if self.class_box is not None else None
        near = self.near_box.isChecked() if self.near_box is not None else True
        return self.seed.value(), self.truncation.value(), class_index, near


def ask_recovery(parent: QWidget | None, rec: RecoveryFile) -> RecoveryChoice:
    """Recover / Discard / Later for the autosave of a session that did not exit cleanly."""
    name = rec.original_path.name if rec.original_path is not None else "an untitled image"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
    box = QMessageBox(
        QMessageBox.Icon.Question,
        "Recover unsaved changes?",
        f"The editor did not exit cleanly. Unsaved changes to {name} were autosaved at {when}.",
        QMessageBox.StandardButton.NoButton,
        parent,
    )
    box.setObjectName("recovery-box")
    box.setInformativeText("Recover them, discard them, or decide at the next start?")
    recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(recover)
    try:
        box.exec()
        clicked = box.clickedButton()
    finally:
        box.deleteLater()
    if clicked is recover:
        return RecoveryChoice.RECOVER
    if clicked is discard:
        return RecoveryChoice.DISCARD
    return RecoveryChoice.LATER
