"""Wires the Layers panel to the document."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QPixmap

from editor.document import Document, Layer, make_raster_layer
from editor.panels.layers import THUMB, LayerRow, LayersPanel
from editor.qtimage import thumbnail
from ganmodels.blending import blend_label

THUMB_DELAY_MS = 150  # thumbnails of changing layers are redrawn at most this often


def _tooltip(layer: Layer) -> str:
    blend = f", blend {blend_label(layer.blend)}" if layer.blend != "normal" else ""
    if layer.gan is None:
        return f"{layer.name}: raster layer{blend}"
    g = layer.gan
    seed = f", seed {g.seed}" if g.seed is not None else ""
    edits = f", {len(g.strengths)} direction edit(s)" if g.strengths else ""
    return f"{layer.name}: GAN layer ({g.model_name}{seed}, truncation {g.truncation:.2f}{edits}){blend}"


class LayersController(QObject):
    def __init__(self, doc: Document, panel: LayersPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc, self.panel = doc, panel
        self._thumbs: dict[str, QPixmap] = {}
        self._stale_thumbs: set[str] = set()
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(THUMB_DELAY_MS)
        self._thumb_timer.timeout.connect(self._update_thumbnails)

        doc.layers_changed.connect(self.refresh)
        doc.layer_changed.connect(self.refresh)
        doc.layer_pixels_changed.connect(self._on_pixels)
        doc.active_changed.connect(panel.set_active)
        doc.reset.connect(self._on_reset)
        doc.resized.connect(self._on_reset)

        panel.add_requested.connect(self.add_layer)
        panel.delete_requested.connect(doc.delete_layer)
        panel.duplicate_requested.connect(doc.duplicate_layer)
        panel.move_requested.connect(self.move_by)
        panel.order_requested.connect(self.apply_order)
        panel.rename_requested.connect(doc.rename_layer)
        panel.visibility_requested.connect(doc.set_visible)
        panel.opacity_requested.connect(self._on_opacity)
        panel.blend_requested.connect(lambda layer_id, mode, gesture: doc.set_blend(layer_id, mode, gesture=gesture))
        panel.active_requested.connect(doc.set_active)
        self._on_reset()

    def refresh(self, *_args: object) -> None:
        """Show the document's layers."""
        rows = [
            LayerRow(layer.id, layer.name, layer.visible, layer.opacity, layer.kind, _tooltip(layer), layer.blend)
            for layer in self.doc.layers
        ]
        self.panel.set_layers(rows, self.doc.active_id)
        ids = {layer.id for layer in self.doc.layers}
        for layer_id in list(self._thumbs):
            if layer_id not in ids:
                del self._thumbs[layer_id]
        missing = ids - set(self._thumbs)
        for layer_id, pixmap in self._thumbs.items():
            self.panel.set_thumbnail(layer_id, pixmap)
        if missing:
            self._stale_thumbs |= missing
            self._update_thumbnails()

    def add_layer(self) -> None:
        """A new transparent raster layer above the active one."""
        index = self.doc.index_of(self.doc.active_id) + 1 if self.doc.active_id else None
        names = {layer.name for layer in self.doc.layers}
        n = 1
        while f"Layer {n}" in names:
            n += 1
        self.doc.add_layer(make_raster_layer(*self.doc.size, name=f"Layer {n}"), index)

    def move_by(self, layer_id: str, delta: int) -> None:
        """Move up (+1) or down (-1) the stack."""
        self.doc.move_layer(layer_id, self.doc.index_of(layer_id) + delta)

    def apply_order(self, ids_top_first: list[str]) -> None:
        """After a drag in the list: move the one layer whose position changed."""
        wanted = list(reversed(ids_top_first))
        current = [layer.id for layer in self.doc.layers]
        if sorted(wanted) != sorted(current) or wanted == current:
            self.refresh()
            return
        # One drag moves one item: find the item whose removal makes both orders agree.
        for layer_id in current:
            if [i for i in current if i != layer_id] == [i for i in wanted if i != layer_id]:
                self.doc.move_layer(layer_id, wanted.index(layer_id))
                return
        self.refresh()

    def _on_opacity(self, layer_id: str, opacity: float, gesture: object) -> None:
        self.doc.set_opacity(layer_id, opacity, gesture=gesture)

    def _on_reset(self) -> None:
        self._thumbs.clear()
        self.refresh()

    def _on_pixels(self, layer_id: str) -> None:
        self._stale_thumbs.add(layer_id)
        if not self._thumb_timer.isActive():
            self._thumb_timer.start()

    def _update_thumbnails(self) -> None:
        for layer_id in self._stale_thumbs:
            layer = self.doc.find(layer_id)
            if layer is None:
                continue
            pixmap = QPixmap.fromImage(thumbnail(layer.pixels, THUMB))
            self._thumbs[layer_id] = pixmap
            self.panel.set_thumbnail(layer_id, pixmap)
        self._stale_thumbs.clear()
