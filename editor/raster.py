"""Pixel maths of the editor, in pure numpy (no Qt): rectangles, compositing, brush dabs, resizing.

Conventions: images are float32 [H, W, C] in [0, 1]; layer pixels are RGBA with *straight* (not premultiplied)
alpha; masks are float32 [H, W] with 1 = fill. Coordinates are (x, y) in document pixels, pixel centres at +0.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import cv2
import numpy as np

from ganmodels.blending import blended_source
from ganmodels.imageio import float_to_uint8


class Rect(NamedTuple):
    """An integer pixel rectangle (x, y, w, h); empty when w or h <= 0."""

    x: int
    y: int
    w: int
    h: int

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices for indexing an [H, W, ...] array."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def united(self, other: Rect) -> Rect:
        """The smallest rectangle holding both (an empty rectangle is ignored)."""
        if self.empty:
            return other
        if other.empty:
            return self
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def clipped(self, width: int, height: int) -> Rect:
        """This rectangle cut to [0, width) x [0, height)."""
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.w, width), min(self.y + self.h, height)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


EMPTY_RECT = Rect(0, 0, 0, 0)


# --------------------------------------------------------------------------------------------------------------
# Compositing


def blank_rgba(width: int, height: int, color: Sequence[float] = (0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """float32 [H, W, 4] filled with one straight-alpha colour."""
    out = np.empty([height, width, 4], np.float32)
    out[:] = np.asarray(color, np.float32)
    return out


def composite(
    layers: Iterable[tuple[np.ndarray, float] | tuple[np.ndarray, float, str]], width: int, height: int
) -> np.ndarray:
    """Porter-Duff "over" of straight-alpha RGBA layers, bottom first: (pixels [H, W, 4], opacity) pairs, or
    (pixels, opacity, blend mode) triples (``ganmodels.blending``; the stack starts transparent, so a mode acts
    only where something lies below).

    Returns straight-alpha float32 [H, W, 4]; fully transparent pixels have RGB 0. (Accumulates premultiplied
    colour in contiguous buffers reused across layers: ~5 passes over the image per Normal layer.)
    """
    rgb = np.zeros([height, width, 3], np.float32)  # premultiplied
    alpha = np.zeros([height, width, 1], np.float32)
    a = np.empty([height, width, 1], np.float32)
    tmp = np.empty([height, width, 3], np.float32)
    tmp_a = np.empty([height, width, 1], np.float32)
    for pixels, opacity, *mode in layers:
        if opacity <= 0:
            continue
        src = pixels[..., :3]
        if mode and mode[0] != "normal":
            backdrop = rgb / np.maximum(alpha, np.float32(1e-12))  # straight colour below (0 where nothing is)
            src = blended_source(mode[0], backdrop, alpha, src)
        np.multiply(pixels[..., 3:4], np.float32(opacity), out=a)
        np.subtract(src, rgb, out=tmp)  # rgb' = rgb + a (src - rgb)
        tmp *= a
        rgb += tmp
        np.subtract(1.0, alpha, out=tmp_a)  # alpha' = alpha + a (1 - alpha)
        tmp_a *= a
        alpha += tmp_a
    if alpha.min(initial=1.0) < 1.0:
        np.divide(rgb, np.maximum(alpha, np.float32(1e-12)), out=rgb)  # rgb is 0 wherever alpha is 0
    out = np.concatenate([rgb, alpha], axis=2)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def to_display(rgba: np.ndarray, *, opaque_or_clear: bool = False) -> np.ndarray:
    """Straight RGBA float [H, W, 4] -> premultiplied RGBA uint8 [H, W, 4] (what the canvas draws; ~1 ms/MP).

    ``opaque_or_clear``: the caller knows every alpha is 0 or 1 with RGB 0 where it is 0 (placed GAN renders),
    so premultiplying changes nothing and is skipped.
    """
    if opaque_or_clear:
        return cv2.convertScaleAbs(rgba, alpha=255.0)
    out = np.multiply(rgba, rgba[..., 3:4])
    out[..., 3] = rgba[..., 3]
    return cv2.convertScaleAbs(out, alpha=255.0)


def over_background(rgba: np.ndarray, background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Straight RGBA [H, W, 4] over an opaque colour -> RGB float32 [H, W, 3]."""
    a = rgba[..., 3:4]
    return (rgba[..., :3] * a + np.asarray(background, np.float32) * (1 - a)).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [..] in [0, 1] -> uint8, rounded (the one quantisation used for display and export)."""
    return float_to_uint8(image)


# --------------------------------------------------------------------------------------------------------------
# Resizing and placing square GAN renders


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize float32 [H, W, C]: area averaging when shrinking, bicubic (clipped to [0, 1]) when enlarging."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if width < w and height < h else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(image, np.float32), (width, height), interpolation=interp)
    if out.ndim == 2 and image.ndim == 3:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0, out=out)


def resize_rgba(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """Straight-alpha RGBA float32 [H, W, 4] resized (as ``resize``) with its colours weighted by alpha, so that
    the colour of transparent pixels does not bleed into the opaque ones next to them."""
    if rgba.shape[1::-1] == (width, height):
        return rgba.astype(np.float32, copy=True)
    pre = np.ascontiguousarray(rgba, np.float32).copy()
    pre[..., :3] *= pre[..., 3:4]
    out = resize(pre, width, height)  # [height, width, 4] premultiplied
    alpha = out[..., 3:4]
    np.divide(out[..., :3], alpha, out=out[..., :3], where=alpha > 1e-6)
    out[..., :3][alpha[..., 0] <= 1e-6] = 0.0
    return np.clip(out, 0.0, 1.0, out=out)


def mask_bounds(mask: np.ndarray) -> Rect:
    """The smallest rectangle holding every masked pixel (value > 0) of a mask [H, W]; empty when none is."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    return Rect(x, y, w, h)


def centered_square(width: int, height: int) -> Rect:
    """The largest square centred in a width x height document."""
    side = min(width, height)
    return Rect((width - side) // 2, (height - side) // 2, side, side)


def place_rgb(rgb: np.ndarray, placement: Rect, width: int, height: int) -> np.ndarray:
    """A square RGB render [R, R, 3] resized into ``placement`` of a transparent document-sized RGBA layer."""
    scaled = resize(rgb, placement.w, placement.h)
    if placement == Rect(0, 0, width, height):  # the common case: the render covers the document
        return cv2.cvtColor(scaled, cv2.COLOR_RGB2RGBA)  # alpha 1
    dst = placement.clipped(width, height)
    if dst.empty:
        return np.zeros([height, width, 4], np.float32)
    sy, sx = dst.y - placement.y, dst.x - placement.x
    rgba = cv2.cvtColor(np.ascontiguousarray(scaled[sy : sy + dst.h, sx : sx + dst.w]), cv2.COLOR_RGB2RGBA)
    bottom, right = height - dst.y - dst.h, width - dst.x - dst.w
    return cv2.copyMakeBorder(rgba, dst.y, bottom, dst.x, right, cv2.BORDER_CONSTANT, value=(0.0, 0.0, 0.0, 0.0))


def fit_image(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGBA image scaled to fit inside width x height (keeping its aspect ratio), centred on transparency."""
    h, w = rgba.shape[:2]
    scale = min(width / w, height / h, 1.0) if (w > width or h > height) else 1.0
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = resize(rgba, nw, nh)
    out = blank_rgba(width, height)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y : y + nh, x : x + nw] = scaled
    return out


# --------------------------------------------------------------------------------------------------------------
# Brush


class Dab(NamedTuple):
    """One round brush stamp at a point (document pixels)."""

    x: float
    y: float


def dab_alpha(dx: np.ndarray, dy: np.ndarray, *, radius: float, hardness: float) -> np.ndarray:
    """Coverage in [0, 1] of a round dab at offsets (dx, dy) from its centre.

    ``hardness`` 1 gives a hard disc with a one-pixel anti-aliased edge; lower values widen a smoothstep falloff
    that ends at ``radius``.
    """
    dist = np.sqrt(dx * dx + dy * dy)
    soft = max(radius * (1.0 - hardness), 1.0)
    t = np.clip((radius - dist) / soft, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def dab_rect(dab: Dab, radius: float) -> Rect:
    """The pixels a dab can touch (unclipped)."""
    x0, y0 = math.floor(dab.x - radius), math.floor(dab.y - radius)
    x1, y1 = math.ceil(dab.x + radius), math.ceil(dab.y + radius)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def stroke_rect(dabs: Sequence[Dab], radius: float, width: int, height: int) -> Rect:
    """The clipped bounding rectangle of a list of dabs."""
    rect = EMPTY_RECT
    for d in dabs:
        rect = rect.united(dab_rect(d, radius))
    return rect.clipped(width, height)


def stamp_dabs(mask: np.ndarray, dabs: Sequence[Dab], *, radius: float, hardness: float, erase: bool = False) -> Rect:
    """Stamp dabs into ``mask`` [H, W] in place; returns the changed rectangle.

    Painting takes the maximum of the mask and the dab coverage (overlapping dabs never build up past the brush's
    own profile); erasing takes the minimum with 1 - coverage.
    """
    h, w = mask.shape
    changed = EMPTY_RECT
    for d in dabs:
        r = dab_rect(d, radius).clipped(w, h)
        if r.empty:
            continue
        ys = np.arange(r.y, r.y + r.h, dtype=np.float32)[:, None] + 0.5 - d.y
        xs = np.arange(r.x, r.x + r.w, dtype=np.float32)[None, :] + 0.5 - d.x
        a = dab_alpha(xs, ys, radius=radius, hardness=hardness)  # [h, w]
        region = mask[r.slices]
        if erase:
            np.minimum(region, 1.0 - a, out=region)
        else:
            np.maximum(region, a, out=region)
        changed = changed.united(r)
    return changed


class StrokeSpacer:
    """Turns pointer positions into evenly spaced dab centres (spacing = a fraction of the radius).

    The distance left over at the end of one segment carries into the next, so dabs are spaced evenly whatever
    the pointer's event rate.
    """

    def __init__(self, *, radius: float, spacing: float = 0.15) -> None:
        self.step = max(radius * spacing, 0.5)
        self._last: tuple[float, float] | None = None
        self._carry = 0.0

    def begin(self, x: float, y: float) -> list[Dab]:
        """Start a stroke: one dab under the pointer."""
        self._last = (x, y)
        self._carry = 0.0
        return [Dab(x, y)]

    def move_to(self, x: float, y: float) -> list[Dab]:
        """Dabs between the previous position and (x, y)."""
        if self._last is None:
            return self.begin(x, y)
        x0, y0 = self._last
        length = math.hypot(x - x0, y - y0)
        dabs: list[Dab] = []
        t = self.step - self._carry
        while t <= length:
            f = t / length
            dabs.append(Dab(x0 + (x - x0) * f, y0 + (y - y0) * f))
            t += self.step
        self._carry = length - (t - self.step)
        self._last = (x, y)
        return dabs
