"""Conversions between the editor's float arrays and QImage (GUI thread)."""

from __future__ import annotations

import collections
import weakref

import numpy as np
from PySide6.QtGui import QImage

from editor.raster import to_display, to_uint8

MASK_TINT = (230, 30, 40)  # the red of the mask overlay
MASK_OPACITY = 0.5


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """Straight-alpha RGBA float [H, W, 4] (or uint8) -> a QImage that owns its pixels."""
    arr = np.ascontiguousarray(rgba if rgba.dtype == np.uint8 else to_uint8(rgba))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class DisplayCache:
    """Canvas images already computed for pixel arrays (the worker converts its renders off the GUI thread).

    Keyed by the identity of the float array, checked through a weak reference; holds the newest ``size``."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: collections.OrderedDict[int, tuple[weakref.ref, np.ndarray]] = collections.OrderedDict()

    def put(self, pixels: np.ndarray, display: np.ndarray) -> None:
        """Remember that ``display`` (premultiplied uint8 [H, W, 4]) shows ``pixels``."""
        self._items[id(pixels)] = (weakref.ref(pixels), display)
        self._items.move_to_end(id(pixels))
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, pixels: np.ndarray) -> np.ndarray | None:
        entry = self._items.get(id(pixels))
        if entry is None or entry[0]() is not pixels:
            return None
        return entry[1]


display_cache = DisplayCache()


def display_qimage(rgba: np.ndarray) -> QImage:
    """Straight-alpha RGBA float [H, W, 4] -> an owning premultiplied QImage for the canvas."""
    arr = display_cache.get(rgba)
    arr = np.ascontiguousarray(arr if arr is not None else to_display(rgba))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied).copy()


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """RGB float [H, W, 3] (or uint8) -> an owning QImage."""
    arr = np.ascontiguousarray(rgb if rgb.dtype == np.uint8 else to_uint8(rgb))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def mask_to_overlay(mask: np.ndarray, *, tint=MASK_TINT, opacity: float = MASK_OPACITY) -> QImage:
    """A mask [H, W] in [0, 1] -> a premultiplied RGBA QImage: the tint with alpha = mask * opacity."""
    h, w = mask.shape
    if not mask.any():  # the usual case (a picture just opened, a layer without a mask): nothing to compute
        empty = QImage(w, h, QImage.Format.Format_RGBA8888_Premultiplied)
        empty.fill(0)
        return empty
    a = np.clip(mask, 0.0, 1.0) * np.float32(opacity)  # [H, W]
    out = np.empty([h, w, 4], np.uint8)
    for c in range(3):
        out[..., c] = (a * tint[c] + 0.5).astype(np.uint8)
    out[..., 3] = (a * 255 + 0.5).astype(np.uint8)
    return QImage(out.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied).copy()


def qimage_to_rgba(image: QImage) -> np.ndarray:
    """A QImage -> straight-alpha RGBA float32 [H, W, 4]."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : 4 * w].reshape(h, w, 4).astype(np.float32) / 255.0


def thumbnail(rgba: np.ndarray, size: int = 40) -> QImage:
    """A small preview of a layer (nearest sampling: cheap enough to redo on every change)."""
    h, w = rgba.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return rgba_to_qimage(rgba[::step, ::step])
