"""Wires the document and the brush to the canvas view: keeps one canvas image per layer (only changed layers
are converted, at most once per event-loop pass), keeps the mask overlay of the active layer up to date and turns
pointer strokes into one undoable mask edit per stroke."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, QPointF, QTimer, Signal

from editor.brush import BrushSettings
from editor.canvas import CanvasView
from editor.document import Document
from editor.qtimage import MASK_TINT, display_qimage, mask_to_overlay, rgb_to_qimage
from editor.raster import Rect, StrokeSpacer, resize

PREVIEW_MAX_SIDE = 1024  # job previews are resized to at most this (the canvas scales the rest)


class CanvasController(QObject):
    """Keeps ``view`` showing ``doc``; pixel changes are coalesced into one update per event-loop pass."""

    frame_presented = Signal(float)  # perf_counter time new layer images were handed to the view

    def __init__(self, doc: Document, view: CanvasView, brush: BrushSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc, self.view, self.brush = doc, view, brush
        self._spacer: StrokeSpacer | None = None
        self._stroke: object | None = None
        self._stroke_layer = ""
        self._overlay_layer = ""
        self.mask_tint: tuple[int, int, int] = MASK_TINT  # the overlay's colour
        self._dirty: set[str] = set()
        self._structure_dirty = True
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.refresh)

        doc.reset.connect(self._on_reset)
        doc.resized.connect(self._on_reset)
        doc.layers_changed.connect(self._on_layers_changed)
        doc.layer_changed.connect(self._on_layer_changed)
        doc.layer_pixels_changed.connect(self._on_pixels_changed)
        doc.mask_changed.connect(self._on_mask_changed)
        doc.active_changed.connect(self._on_active_changed)
        view.stroke_started.connect(self._on_stroke_started)
        view.stroke_moved.connect(self._on_stroke_moved)
        view.stroke_finished.connect(self._on_stroke_finished)
        brush.changed.connect(self._on_brush_changed)
        self._on_brush_changed()
        self._on_reset()

    # ----------------------------------------------------------------------------------------------------------
    # Display

    def schedule_refresh(self, *_args: object) -> None:
        """Update the view at the next event-loop pass (many changes in one pass cost one update)."""
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Bring the view up to date now."""
        self._timer.stop()
        if self._structure_dirty:
            self._structure_dirty = False
            self._dirty |= set(self.view.set_layer_order([layer.id for layer in self.doc.layers]))
            for layer in self.doc.layers:
                self.view.set_layer_props(layer.id, visible=layer.visible, opacity=layer.opacity, blend=layer.blend)
        for layer_id in self._dirty:
            layer = self.doc.find(layer_id)
            if layer is not None:
                self.view.set_layer_image(layer_id, display_qimage(layer.pixels))
        self._dirty.clear()
        self.frame_presented.emit(time.perf_counter())

    def _on_layers_changed(self) -> None:
        self._structure_dirty = True
        self.schedule_refresh()

    def _on_layer_changed(self, layer_id: str) -> None:
        layer = self.doc.find(layer_id)
        if layer is not None and layer_id in self.view.layer_items:
            self.view.set_layer_props(layer_id, visible=layer.visible, opacity=layer.opacity, blend=layer.blend)

    def _on_pixels_changed(self, layer_id: str) -> None:
        self._dirty.add(layer_id)
        self.schedule_refresh()

    def _on_reset(self) -> None:
        self.view.set_preview(None)
        self.view.set_document_size(*self.doc.size)
        self._structure_dirty = True
        self._dirty = {layer.id for layer in self.doc.layers}
        self.refresh()
        self._rebuild_overlay()
        self.view.zoom_to_fit()

    def _on_active_changed(self, _layer_id: str) -> None:
        self._rebuild_overlay()
        self.view.set_paint_enabled(self.doc.active_layer is not None)

    def set_mask_tint(self, rgb: tuple[int, int, int]) -> None:
        """Show masks in another colour (one that stands out on the picture)."""
        self.mask_tint = tuple(int(min(max(c, 0), 255)) for c in rgb)  # type: ignore[assignment]
        self._rebuild_overlay()

    def _rebuild_overlay(self) -> None:
        layer = self.doc.active_layer
        self._overlay_layer = layer.id if layer is not None else ""
        self.view.set_mask_overlay(mask_to_overlay(layer.mask, tint=self.mask_tint) if layer is not None else None)
        self.view.set_paint_enabled(layer is not None)

    def _on_mask_changed(self, layer_id: str, rect: Rect | None) -> None:
        if layer_id != self._overlay_layer:
            return
        layer = self.doc.find(layer_id)
        if layer is None:
            return
        if rect is None:
            self._rebuild_overlay()
        elif not rect.empty:
            self.view.update_mask_overlay(rect, mask_to_overlay(layer.mask[rect.slices], tint=self.mask_tint))

    def _on_brush_changed(self) -> None:
        self.view.set_brush_diameter(self.brush.size)

    def show_preview(self, image: np.ndarray | None, rect: Rect | None) -> None:
        """Show a running job's preview (RGB float32 [h, w, 3]) over ``rect`` of the document; None hides it."""
        if image is None or rect is None or rect.empty:
            self.view.set_preview(None)
            return
        scale = min(1.0, PREVIEW_MAX_SIDE / max(rect.w, rect.h))
        scaled = resize(image, max(1, round(rect.w * scale)), max(1, round(rect.h * scale)))  # [h', w', 3]
        self.view.set_preview(rgb_to_qimage(scaled), rect)

    # ----------------------------------------------------------------------------------------------------------
    # Strokes: one undo step each (the document merges commands that share the stroke token)

    def _on_stroke_started(self, pos: QPointF) -> None:
        layer = self.doc.active_layer
        if layer is None:
            return
        self._stroke = object()
        self._stroke_layer = layer.id
        self._spacer = StrokeSpacer(radius=self.brush.radius)
        self._paint(self._spacer.begin(pos.x(), pos.y()))

    def _on_stroke_moved(self, pos: QPointF) -> None:
        if self._spacer is not None:
            self._paint(self._spacer.move_to(pos.x(), pos.y()))

    def _on_stroke_finished(self) -> None:
        self._spacer = None
        self._stroke = None
        self._stroke_layer = ""

    def _paint(self, dabs) -> None:
        if not dabs or self.doc.find(self._stroke_layer) is None:
            return
        self.doc.paint_mask(
            self._stroke_layer,
            dabs,
            radius=self.brush.radius,
            hardness=self.brush.hardness,
            erase=self.brush.erase,
            stroke=self._stroke,
        )
