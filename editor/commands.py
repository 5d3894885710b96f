"""Undo commands of the document. Built by ``Document``'s public methods; they call its primitive ``_`` edits.

Each command's ``redo`` runs once when pushed (QUndoStack calls it) and again after an undo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtGui import QUndoCommand

from editor.raster import EMPTY_RECT, Dab, Rect, stamp_dabs, stroke_rect

if TYPE_CHECKING:
    from editor.document import Document, Layer
    from editor.latent import GanState

# Ids for QUndoCommand.id(): commands with equal ids may merge (mergeWith decides).
MERGE_PROPERTY = 1
MERGE_MASK_STROKE = 2


class AddLayerCommand(QUndoCommand):
    """Insert a layer and make it active; undo removes it and restores the previous selection."""

    def __init__(self, doc: Document, layer: Layer, index: int, *, text: str = "Add layer") -> None:
        super().__init__(text)
        self.doc, self.layer, self.index = doc, layer, index
        self.prev_active = doc.active_id

    def redo(self) -> None:
        self.doc._insert(self.index, self.layer)
        self.doc._activate(self.layer.id)

    def undo(self) -> None:
        self.doc._remove(self.layer.id)
        self.doc._activate(self.prev_active)


class DeleteLayerCommand(QUndoCommand):
    """Remove a layer; the layer below (else above) becomes active if the removed one was."""

    def __init__(self, doc: Document, layer_id: str) -> None:
        super().__init__(f"Delete layer {doc.layer(layer_id).name!r}")
        self.doc, self.layer_id = doc, layer_id
        self.prev_active = doc.active_id
        self.index = -1
        self.layer: Layer | None = None

    def redo(self) -> None:
        self.index, self.layer = self.doc._remove(self.layer_id)
        if self.prev_active == self.layer_id:
            remaining = self.doc.layers
            if remaining:
                self.doc._activate(remaining[max(0, self.index - 1)].id)
            else:
                self.doc._activate("")

    def undo(self) -> None:
        assert self.layer is not None
        self.doc._insert(self.index, self.layer)
        self.doc._activate(self.prev_active)


class MoveLayerCommand(QUndoCommand):
    """Move a layer to another position in the stack."""

    def __init__(self, doc: Document, layer_id: str, index: int) -> None:
        super().__init__("Move layer")
        self.doc, self.layer_id, self.index = doc, layer_id, index
        self.old_index = doc.index_of(layer_id)

    def redo(self) -> None:
        self.doc._move(self.layer_id, self.index)

    def undo(self) -> None:
        self.doc._move(self.layer_id, self.old_index)


class SetLayerPropertyCommand(QUndoCommand):
    """Change name, visible, opacity or blend mode. Commands with the same non-None ``merge_key`` on the same layer and
    property merge (one undo step per slider drag)."""

    PROPERTIES = ("name", "visible", "opacity", "blend")

    def __init__(
        self, doc: Document, layer_id: str, name: str, value: Any, *, text: str, merge_key: object = None
    ) -> None:
        super().__init__(text)
        if name not in self.PROPERTIES:
            raise ValueError(f"not an undoable layer property: {name}")
        self.doc, self.layer_id, self.name, self.value = doc, layer_id, name, value
        self.old = getattr(doc.layer(layer_id), name)
        self.merge_key = merge_key

    def id(self) -> int:
        return MERGE_PROPERTY if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (
            isinstance(other, SetLayerPropertyCommand)
            and other.merge_key is not None
            and other.merge_key == self.merge_key
            and other.layer_id == self.layer_id
            and other.name == self.name
        ):
            return False
        self.value = other.value
        self.setText(other.text())  # (the newest value names the step)
        return True

    def redo(self) -> None:
        self.doc._set_property(self.layer_id, self.name, self.value)

    def undo(self) -> None:
        self.doc._set_property(self.layer_id, self.name, self.old)


class SetPixelsCommand(QUndoCommand):
    """Replace a layer's pixels."""

    def __init__(self, doc: Document, layer_id: str, pixels: np.ndarray, *, before: np.ndarray | None, text: str):
        super().__init__(text)
        self.doc, self.layer_id, self.pixels = doc, layer_id, pixels
        self.before = doc.layer(layer_id).pixels if before is None else before

    def redo(self) -> None:
        self.doc._set_pixels(self.layer_id, self.pixels)

    def undo(self) -> None:
        self.doc._set_pixels(self.layer_id, self.before)


class SetLatentCommand(QUndoCommand):
    """Replace a GAN layer's latent state and rendered pixels together."""

    def __init__(
        self,
        doc: Document,
        layer_id: str,
        state: GanState,
        pixels: np.ndarray,
        *,
        before: tuple[GanState, np.ndarray] | None,
        text: str,
    ) -> None:
        super().__init__(text)
        layer = doc.layer(layer_id)
        assert layer.gan is not None
        self.doc, self.layer_id, self.state, self.pixels = doc, layer_id, state, pixels
        self.before = (layer.gan, layer.pixels) if before is None else before

    def redo(self) -> None:
        self.doc._set_gan(self.layer_id, self.state)
        self.doc._set_pixels(self.layer_id, self.pixels)

    def undo(self) -> None:
        self.doc._set_gan(self.layer_id, self.before[0])
        self.doc._set_pixels(self.layer_id, self.before[1])


class SetMaskCommand(QUndoCommand):
    """Replace a whole mask (clear, invert, load)."""

    def __init__(self, doc: Document, layer_id: str, mask: np.ndarray, *, text: str) -> None:
        super().__init__(text)
        self.doc, self.layer_id, self.mask = doc, layer_id, mask
        self.before = doc.layer(layer_id).mask.copy()

    def redo(self) -> None:
        self.doc._set_mask(self.layer_id, self.mask.copy())

    def undo(self) -> None:
        self.doc._set_mask(self.layer_id, self.before.copy())


class PaintMaskCommand(QUndoCommand):
    """Brush dabs stamped into a mask. Keeps the dabs and the patch each segment overwrote, so successive
    commands of one stroke merge cheaply (a whole stroke is one undo step, whatever the image size): undo pastes
    the patches back newest first; redo stamps the dabs again (stamping is deterministic)."""

    def __init__(
        self,
        doc: Document,
        layer_id: str,
        dabs: list[Dab],
        *,
        radius: float,
        hardness: float,
        erase: bool,
        stroke: object,
    ) -> None:
        super().__init__("Erase mask" if erase else "Paint mask")
        self.doc, self.layer_id, self.stroke = doc, layer_id, stroke
        self.dabs, self.radius, self.hardness, self.erase = dabs, radius, hardness, erase
        self.patches: list[tuple[Rect, np.ndarray]] = []  # (rect, mask before), oldest first
        self.rect = EMPTY_RECT  # everything the stroke touched
        self._done_once = False

    def id(self) -> int:
        return MERGE_MASK_STROKE if self.stroke is not None else -1

    def redo(self) -> None:
        mask = self.doc.layer(self.layer_id).mask
        h, w = mask.shape
        if not self._done_once:
            self._done_once = True
            rect = stroke_rect(self.dabs, self.radius, w, h)
            if rect.empty:
                self.setObsolete(True)  # nothing changed: QUndoStack drops the command
                return
            self.patches.append((rect, mask[rect.slices].copy()))
            self.rect = rect
        stamp_dabs(mask, self.dabs, radius=self.radius, hardness=self.hardness, erase=self.erase)
        self.doc._mask_changed(self.layer_id, self.rect)

    def undo(self) -> None:
        mask = self.doc.layer(self.layer_id).mask
        for rect, before in reversed(self.patches):
            mask[rect.slices] = before
        self.doc._mask_changed(self.layer_id, self.rect)

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (
            isinstance(other, PaintMaskCommand)
            and other.stroke is not None
            and other.stroke == self.stroke
            and other.layer_id == self.layer_id
            and (other.radius, other.hardness, other.erase) == (self.radius, self.hardness, self.erase)
        ):
            return False
        self.dabs = self.dabs + other.dabs
        self.patches += other.patches
        self.rect = self.rect.united(other.rect)
        return True


class CanvasCommand(QUndoCommand):
    """Give the document another size and every layer new pixels and masks at once (Crop, Resize Image); undo
    puts back the size and layers from before (as ``Document.saved_layers`` described them)."""

    def __init__(self, doc: Document, width: int, height: int, layers: list[Layer], *, text: str) -> None:
        super().__init__(text)
        self.doc = doc
        self.new = (width, height, list(layers))
        self.old = (doc.width, doc.height, doc.saved_layers())

    def redo(self) -> None:
        self.doc._set_canvas(*self.new)

    def undo(self) -> None:
        self.doc._set_canvas(*self.old)
