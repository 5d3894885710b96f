"""The canvas: a QGraphicsView showing the document's layers over a checkerboard, with the active layer's mask
as a red tint, zoom / pan and a brush outline. Each layer is one item holding a premultiplied 8-bit image, so Qt
composites them (with opacity and blend mode) only where the view repaints; changing one layer converts only that
layer. While a visible layer blends other than Normal, the layers are drawn from one cached composite of the
document instead (redone when a layer changes), so that modes mix with the layers below and never with the
checkerboard.
It knows nothing of the document: ``CanvasController`` feeds it images and turns its stroke signals into
document commands.

Input: left drag paints (stroke_started / stroke_moved / stroke_finished in document coordinates); Space + drag
or middle drag pans; Ctrl + wheel zooms about the pointer; plain wheel scrolls. Files dropped on it are reported
by ``files_dropped``.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from editor.raster import Rect

MIN_ZOOM, MAX_ZOOM = 1 / 32, 64.0
WHEEL_STEP = 2 ** (1 / 4)  # zoom factor per wheel notch
SURROUND = QColor(58, 58, 62)
CHECKER_LIGHT, CHECKER_DARK = QColor(204, 204, 204), QColor(153, 153, 153)
CHECKER_TILE = 8  # screen pixels
MASK_Z = 1e6  # the mask overlay is drawn above every layer
PREVIEW_Z = MASK_Z - 1  # a running job's preview: above the layers, below the mask
_CM = QPainter.CompositionMode
COMPOSITION_MODES = {  # ganmodels.blending's modes as Qt draws them (the same W3C formulas)
    "normal": _CM.CompositionMode_SourceOver,
    "multiply": _CM.CompositionMode_Multiply,
    "screen": _CM.CompositionMode_Screen,
    "overlay": _CM.CompositionMode_Overlay,
    "darken": _CM.CompositionMode_Darken,
    "lighten": _CM.CompositionMode_Lighten,
    "color-dodge": _CM.CompositionMode_ColorDodge,
    "color-burn": _CM.CompositionMode_ColorBurn,
    "hard-light": _CM.CompositionMode_HardLight,
    "soft-light": _CM.CompositionMode_SoftLight,
    "difference": _CM.CompositionMode_Difference,
    "exclusion": _CM.CompositionMode_Exclusion,
}


def checker_brush(tile: int = CHECKER_TILE) -> QBrush:
    """A two-tone checkerboard brush (tiles of ``tile`` screen pixels)."""
    pm = QPixmap(2 * tile, 2 * tile)
    pm.fill(CHECKER_LIGHT)
    p = QPainter(pm)
    p.fillRect(0, 0, tile, tile, CHECKER_DARK)
    p.fillRect(tile, tile, tile, tile, CHECKER_DARK)
    p.end()
    return QBrush(pm)


class ImageItem(QGraphicsItem):
    """Draws a QImage at scene (0, 0), one scene unit per image pixel; nearest sampling when zoomed in."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self.blend = "normal"  # a key of COMPOSITION_MODES
        self.drawn_by_group = False  # a LayerGroup draws this layer (as part of its composite)

    @property
    def image(self) -> QImage:
        return self._image

    def set_image(self, image: QImage) -> None:
        if image.size() != self._image.size():
            self.prepareGeometryChange()
        self._image = image
        self.update()

    def paste(self, x: int, y: int, patch: QImage) -> None:
        """Replace a rectangle of the image (patch in the image's own format) and repaint only that part."""
        if self._image.isNull():
            return
        p = QPainter(self._image)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.drawImage(x, y, patch)
        p.end()
        self.update(QRectF(x, y, patch.width(), patch.height()))

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._image.isNull() or self.drawn_by_group:
            return
        draw_exposed(painter, option, self._image)


def draw_exposed(painter: QPainter, option: QStyleOptionGraphicsItem, image: QImage) -> None:
    """Draw the part of ``image`` (one scene unit per pixel) the view repaints; smooth only when zoomed out."""
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, painter.worldTransform().m11() < 1.0)
    exposed = option.exposedRect.toAlignedRect().intersected(image.rect())
    if not exposed.isEmpty():
        painter.drawImage(exposed, image, exposed)


def compose_layers(items: list[ImageItem], width: int, height: int) -> QImage:
    """The visible layer items composited on transparency, bottom first, with opacity and blend modes."""
    image = QImage(width, height, QImage.Format.Format_RGBA8888_Premultiplied)
    image.fill(0)
    p = QPainter(image)
    for item in sorted(items, key=lambda i: i.zValue()):
        if item.isVisible() and not item.image.isNull():
            p.setOpacity(item.opacity())
            p.setCompositionMode(COMPOSITION_MODES[item.blend])
            p.drawImage(0, 0, item.image)
    p.end()
    return image


class LayerGroup(QGraphicsItem):
    """The parent of the layer items. Normally it draws nothing and each item draws its layer; while
    ``isolated`` it draws them all from one cached composite (blend modes need the layers below, not the
    checkerboard), redone after a layer changed (``invalidate``)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)
        self.isolated = False
        self.size = (0, 0)  # the document's
        self._cache: QImage | None = None

    def set_isolated(self, isolated: bool) -> None:
        self.prepareGeometryChange()
        self.isolated = isolated
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, not isolated)
        for item in self.childItems():
            if isinstance(item, ImageItem):
                item.drawn_by_group = isolated
                item.update()
        self.invalidate()

    def set_size(self, width: int, height: int) -> None:
        self.prepareGeometryChange()
        self.size = (width, height)
        self.invalidate()

    def invalidate(self) -> None:
        """A layer changed: compose again at the next paint."""
        self._cache = None
        if self.isolated:
            self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.size) if self.isolated else QRectF()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.isolated:
            return
        if self._cache is None:
            items = [i for i in self.childItems() if isinstance(i, ImageItem)]
            self._cache = compose_layers(items, *self.size)
        draw_exposed(painter, option, self._cache)


class CanvasView(QGraphicsView):
    """Zoomable, pannable view of the document with a mask brush."""

    stroke_started = Signal(QPointF)
    stroke_moved = Signal(QPointF)
    stroke_finished = Signal()
    zoom_changed = Signal(float)
    files_dropped = Signal(list)  # list[str] of local paths
    cursor_moved = Signal(QPointF)  # document coordinates under the pointer

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.layer_items: dict[str, ImageItem] = {}
        self.layer_group = LayerGroup()
        self._scene.addItem(self.layer_group)
        self.mask_item = ImageItem()
        self.mask_item.setZValue(MASK_Z)
        self._scene.addItem(self.mask_item)
        self.preview_item = ImageItem()
        self.preview_item.setZValue(PREVIEW_Z)
        self.preview_item.setVisible(False)
        self._scene.addItem(self.preview_item)
        self._doc_size = (0, 0)
        self._checker = checker_brush()
        self._brush_diameter = 40.0
        self._paint_enabled = False
        self._space_down = False
        self._panning: QPoint | None = None
        self._stroking = False
        self._cursor_view: QPointF | None = None
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(SURROUND)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self._update_cursor()

    # ----------------------------------------------------------------------------------------------------------
    # Content

    def set_document_size(self, width: int, height: int) -> None:
        """Set the canvas extent (document pixels); the scene leaves room to pan past the edges."""
        self._doc_size = (width, height)
        self.layer_group.set_size(width, height)
        margin = max(width, height, 64) * 2
        self._scene.setSceneRect(QRectF(-margin, -margin, width + 2 * margin, height + 2 * margin))
        self.viewport().update()

    @property
    def document_size(self) -> tuple[int, int]:
        return self._doc_size

    def set_layer_order(self, layer_ids: list[str]) -> list[str]:
        """Keep one item per layer, stacked bottom first; returns the ids whose items were created."""
        created = []
        for layer_id in list(self.layer_items):
            if layer_id not in layer_ids:
                self._scene.removeItem(self.layer_items.pop(layer_id))
        for z, layer_id in enumerate(layer_ids):
            item = self.layer_items.get(layer_id)
            if item is None:
                item = self.layer_items[layer_id] = ImageItem(self.layer_group)
                item.drawn_by_group = self.layer_group.isolated
                created.append(layer_id)
            item.setZValue(z)
        self.layer_group.invalidate()
        self._update_isolation()
        return created

    def set_layer_image(self, layer_id: str, image: QImage) -> None:
        """A layer's pixels (premultiplied)."""
        self.layer_items[layer_id].set_image(image)
        self.layer_group.invalidate()

    def set_layer_props(self, layer_id: str, *, visible: bool, opacity: float, blend: str = "normal") -> None:
        item = self.layer_items[layer_id]
        item.setVisible(visible)
        item.setOpacity(opacity)
        if blend not in COMPOSITION_MODES:
            raise ValueError(f"unknown blend mode {blend!r}")
        if blend != item.blend:
            item.blend = blend
            item.update()
        self.layer_group.invalidate()
        self._update_isolation()

    @property
    def isolated(self) -> bool:
        """Whether the layers are drawn from one composite (some visible layer blends other than Normal)."""
        return self.layer_group.isolated

    def _update_isolation(self) -> None:
        need = any(item.isVisible() and item.blend != "normal" for item in self.layer_items.values())
        if need != self.isolated:
            self.layer_group.set_isolated(need)

    def render_document(self) -> QImage:
        """The visible layers composited at 100 % (no checkerboard, no mask), as Qt draws them."""
        return compose_layers(list(self.layer_items.values()), *self._doc_size)

    def set_mask_overlay(self, image: QImage | None) -> None:
        """The tinted mask of the active layer (None hides it)."""
        self.mask_item.set_image(image if image is not None else QImage())

    def update_mask_overlay(self, rect: Rect, patch: QImage) -> None:
        """Replace part of the mask overlay."""
        self.mask_item.paste(rect.x, rect.y, patch)

    def set_preview(self, image: QImage | None, rect: Rect | None = None) -> None:
        """Show ``image`` scaled into ``rect`` of the document above every layer (a running job's live preview;
        not part of the document). None hides it."""
        item = self.preview_item
        if image is None or image.isNull() or rect is None or rect.empty:
            item.setVisible(False)
            item.set_image(QImage())
            return
        item.set_image(image)
        item.setPos(rect.x, rect.y)
        item.setTransform(QTransform.fromScale(rect.w / image.width(), rect.h / image.height()))
        item.setVisible(True)

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_item.setVisible(visible)

    def set_paint_enabled(self, enabled: bool) -> None:
        """Painting needs an active layer; without one the brush is hidden."""
        self._paint_enabled = enabled
        self._update_cursor()
        self.viewport().update()

    def set_brush_diameter(self, diameter: float) -> None:
        """Size of the brush outline, in document pixels."""
        self._refresh_cursor_area()
        self._brush_diameter = diameter
        self._refresh_cursor_area()

    # ----------------------------------------------------------------------------------------------------------
    # Zoom

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, zoom: float, *, anchor: QPoint | None = None) -> None:
        """Zoom to ``zoom`` (1 = 100 %), keeping the document point under ``anchor`` (view coords) in place."""
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        if anchor is None:
            anchor = self.viewport().rect().center()
        before = self.to_document(QPointF(anchor))
        self.setTransform(QTransform.fromScale(zoom, zoom))
        after = self.to_document(QPointF(anchor))
        delta = (before - after) * zoom  # scroll so that ``before`` is under the anchor again
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + round(delta.x()))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(delta.y()))
        self._refresh_cursor_area(full=True)
        self.zoom_changed.emit(zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * 2**0.5)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / 2**0.5)

    def zoom_100(self) -> None:
        """Actual pixels, document centred."""
        self.set_zoom(1.0)
        self.centerOn(QPointF(self._doc_size[0] / 2, self._doc_size[1] / 2))

    def zoom_to_fit(self) -> None:
        """The whole document in view, with a small margin."""
        w, h = self._doc_size
        vp = self.viewport().rect()
        if w <= 0 or h <= 0 or vp.width() < 10 or vp.height() < 10:
            return
        zoom = min((vp.width() - 24) / w, (vp.height() - 24) / h)
        self.set_zoom(max(zoom, MIN_ZOOM))
        self.centerOn(QPointF(w / 2, h / 2))

    # ----------------------------------------------------------------------------------------------------------
    # Painting the view

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, SURROUND)
        w, h = self._doc_size
        if w <= 0 or h <= 0:
            return
        painter.save()
        area = self.viewportTransform().mapRect(QRectF(0, 0, w, h))  # exactly where the layers are drawn
        painter.resetTransform()
        painter.setBrushOrigin(area.topLeft())
        painter.fillRect(area, self._checker)
        painter.restore()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self._cursor_view is None or not self._paint_enabled or self._pan_mode() or self._panning is not None:
            return
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        c = self._cursor_view
        r = self._brush_diameter / 2 * self.zoom
        for color, width in ((QColor(0, 0, 0, 160), 3.0), (QColor(255, 255, 255, 230), 1.0)):
            pen = QPen(color, width)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            if r >= 3:
                painter.drawEllipse(c, r, r)
            painter.drawLine(QPointF(c.x() - 3, c.y()), QPointF(c.x() + 3, c.y()))
            painter.drawLine(QPointF(c.x(), c.y() - 3), QPointF(c.x(), c.y() + 3))
        painter.restore()

    def _cursor_area(self) -> QRect:
        if self._cursor_view is None:
            return QRect()
        r = math.ceil(max(self._brush_diameter / 2 * self.zoom, 4)) + 4
        c = self._cursor_view.toPoint()
        return QRect(c.x() - r, c.y() - r, 2 * r + 1, 2 * r + 1)

    def _refresh_cursor_area(self, *, full: bool = False) -> None:
        if full:
            self.viewport().update()
        elif self._cursor_view is not None:
            self.viewport().update(self._cursor_area())

    def _pan_mode(self) -> bool:
        return self._space_down

    def _update_cursor(self) -> None:
        if self._panning is not None:
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._pan_mode():
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._paint_enabled:
            self.viewport().setCursor(Qt.CursorShape.BlankCursor)
        else:
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)

    # ----------------------------------------------------------------------------------------------------------
    # Input

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._pan_mode()):
            self._panning = event.position().toPoint()
            self._update_cursor()
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton and self._paint_enabled:
            self._stroking = True
            self.stroke_started.emit(self.to_document(event.position()))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._refresh_cursor_area()
        self._cursor_view = pos
        self._refresh_cursor_area()
        self.cursor_moved.emit(self.to_document(pos))
        if self._panning is not None:
            delta = pos.toPoint() - self._panning
            self._panning = pos.toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        if self._stroking:
            self.stroke_moved.emit(self.to_document(pos))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = None
            self._update_cursor()
            event.accept()
            return
        if self._stroking and event.button() == Qt.MouseButton.LeftButton:
            self._stroking = False
            self.stroke_finished.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def to_document(self, pos: QPointF) -> QPointF:
        """A viewport position (sub-pixel) -> document coordinates."""
        inverse, _ok = self.viewportTransform().inverted()
        return inverse.map(pos)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            notches = event.angleDelta().y() / 120
            if notches:
                self.set_zoom(self.zoom * WHEEL_STEP**notches, anchor=event.position().toPoint())
            event.accept()
            return
        super().wheelEvent(event)
        self._refresh_cursor_area(full=True)

    def is_hovered(self) -> bool:
        """Whether the mouse pointer is over the picture area."""
        return self._cursor_view is not None

    def start_space_pan(self) -> None:
        """Space went down: left drags pan until it is released (the canvas takes the keyboard focus, so the
        release reaches it)."""
        if not self.hasFocus():
            self.setFocus(Qt.FocusReason.OtherFocusReason)
        self._space_down = True
        self._update_cursor()
        self.viewport().update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.start_space_pan()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._update_cursor()
            self.viewport().update()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self._refresh_cursor_area()
        self._cursor_view = None
        super().leaveEvent(event)

    def focusOutEvent(self, event) -> None:
        self._space_down = False
        self._update_cursor()
        super().focusOutEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
