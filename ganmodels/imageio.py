"""Reading images and masks for the backend, in the project's one convention:
RGB(A) float32 [H, W, C] in [0, 1], masks float32 [H, W] with 1 = fill."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000  # larger images are refused with a clear message (decompression-bomb guard)


class ImageReadError(ValueError):
    """An image that cannot be read, with a message meant for the user."""


class ImageTooLargeError(ImageReadError):
    """An image over the pixel limit; it can be opened downscaled (``open_image(..., downscale=True)``)."""

    def __init__(self, name: str, size: tuple[int, int], max_pixels: int) -> None:
        w, h = size
        self.size = size
        self.max_pixels = max_pixels
        self.factor = downscale_factor(size, max_pixels)
        self.downscaled_size = (math.ceil(w / self.factor), math.ceil(h / self.factor))
        dw, dh = self.downscaled_size
        self.limit_message = (
            f"{name} is {w}x{h} pixels ({w * h / 1e6:.3g} MP), over the {max_pixels / 1e6:.3g} MP limit"
        )
        super().__init__(f"{self.limit_message}; it can be opened downscaled to {dw}x{dh}")


def downscale_factor(size: tuple[int, int], max_pixels: int) -> int:
    """The smallest integer factor that brings ``size`` to at most ``max_pixels``."""
    w, h = size
    factor = max(1, math.ceil(math.sqrt(w * h / max_pixels)))
    while math.ceil(w / factor) * math.ceil(h / factor) > max_pixels:
        factor += 1
    return factor


def open_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, downscale: bool = False) -> Image.Image:
    """Open an image file: first frame of animations, EXIF orientation applied, fully decoded.

    Over ``max_pixels`` it raises ``ImageTooLargeError`` (a decompression-bomb guard), unless ``downscale``: then
    it is reduced by the smallest integer factor that fits (JPEGs are decoded at the reduced scale directly).
    Files over Pillow's own bomb limit are refused either way.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path.name} is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            w, h = im.size
            factor = 1
            if w * h > max_pixels:
                if not downscale:
                    raise ImageTooLargeError(path.name, (w, h), max_pixels)
                factor = downscale_factor((w, h), max_pixels)
                im.draft(im.mode, (math.ceil(w / factor), math.ceil(h / factor)))  # JPEG: decode at 1/2..1/8
            im.seek(0)
            im.load()
            out: Image.Image = im
            if out.width * out.height > max_pixels:
                if out.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "I;16"):
                    out = out.convert("RGBA")
                out = out.reduce(downscale_factor(out.size, max_pixels))  # box filter
            out = ImageOps.exif_transpose(out)
            return out.copy() if out is im else out
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path.name} is not an image this program can read ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path.name} is damaged or truncated ({e})") from None


def float_to_uint8(image: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint8 of the same shape, x * 255 rounded (ties to even), out-of-range values clipped
    and NaN as 0. About 3x faster than ``(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)`` on a 6000x4000 RGBA
    picture (OpenCV clipping and saturating conversion; ``bench/large_picture.py``)."""
    arr = np.asarray(image)
    if arr.size == 0:
        return np.zeros(arr.shape, np.uint8)
    flat = np.ascontiguousarray(arr).reshape(-1, arr.shape[-1] if arr.ndim else 1)  # [rows, C] (cv2 is 2-D)
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float32)
    flat = cv2.threshold(flat, 0, 0, cv2.THRESH_TOZERO)[1]  # negatives and NaN -> 0
    flat = cv2.threshold(flat, 1, 1, cv2.THRESH_TRUNC)[1]  # above 1 (inf too) -> 1
    return cv2.convertScaleAbs(flat, alpha=255.0).reshape(arr.shape)


def to_rgba_float(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 [H, W, 4] in [0, 1] (straight alpha; 16-bit greyscale keeps its range)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = arr / (65535.0 if arr.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0)
        rgb = np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2)
        return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=2)
    if im.mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32) / 255.0, 0, 1)
        rgb = np.repeat(arr[..., None], 3, axis=2)
        return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "CMYK":
        im = im.convert("RGB")
    out = np.asarray(im.convert("RGBA")).astype(np.float32)  # [H, W, 4]
    out /= 255.0  # (in place: one float copy of a picture that may be 6000 x 4000, not two)
    return out


def load_image_rgba(path: str | Path, *, max_pixels: int = MAX_PIXELS, downscale: bool = False) -> np.ndarray:
    """float32 [H, W, 4] in [0, 1] (see ``open_image`` for the size limit)."""
    return to_rgba_float(open_image(path, max_pixels=max_pixels, downscale=downscale))


def load_image_rgb(path: str | Path, *, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """float32 [H, W, 3] in [0, 1], transparency composited on ``background`` (white by default)."""
    rgba = load_image_rgba(path)
    a = rgba[..., 3:4]
    return (rgba[..., :3] * a + np.asarray(background, np.float32) * (1 - a)).astype(np.float32)


def load_mask(path: str | Path, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask image -> float32 [H, W] with 1 = fill.

    White pixels mean fill. An image with an alpha channel that is not fully opaque uses alpha instead
    (opaque = fill). ``size`` (H, W) resizes with nearest-neighbour and errors if the aspect ratio differs.
    """
    im = open_image(path)
    rgba = to_rgba_float(im)
    alpha = rgba[..., 3]
    if im.mode in ("RGBA", "LA", "PA") and alpha.min() < 1:
        mask = alpha
    else:
        mask = rgba[..., :3].mean(axis=2)
    if size is not None and mask.shape != tuple(size):
        h, w = size
        mh, mw = mask.shape
        if abs(mh / mw - h / w) > 0.01:
            raise ImageReadError(f"mask {mw}x{mh} does not match the image {w}x{h}")
        mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((w, h), Image.NEAREST)) / 255.0
    return np.clip(mask, 0, 1).astype(np.float32)


class _CheckedBuffer(io.BytesIO):
    """A byte buffer that calls ``check()`` before every write (Pillow writes an encoded PNG in blocks of about
    64 KB), so a cancel flag can stop a long encode part-way by raising."""

    def __init__(self, check: Callable[[], None]) -> None:
        super().__init__()
        self._check = check

    def write(self, data) -> int:  # type: ignore[override]
        self._check()
        return super().write(data)


def encode_png(image: Image.Image, *, check: Callable[[], None] | None = None, **save_options: object) -> bytes:
    """``image`` as PNG bytes (``save_options`` go to Pillow, e.g. ``compress_level``, ``pnginfo``). ``check()`` is
    called between the encoder's blocks; whatever it raises stops the encode and propagates."""
    buf = _CheckedBuffer(check) if check is not None else io.BytesIO()
    image.save(buf, format="PNG", **save_options)
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray, *, text: dict[str, str] | None = None) -> Path:
    """float [H, W, 3|4] in [0, 1] (or uint8) -> PNG with optional text chunks, written atomically."""
    from PIL import PngImagePlugin

    path = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = float_to_uint8(arr)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_itxt(k, v)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(arr).save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)
    return path
