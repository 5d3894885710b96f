"""Image files of the editor: reading pictures into layers and exporting PNGs with latent metadata.

Reading goes through ``ganmodels.imageio`` (Pillow, first frame, EXIF orientation applied) and gives straight
RGBA float32 [H, W, 4]. Exported PNGs carry an iTXt chunk ``gan-editor`` with JSON describing the GAN layers they
contain (model, seed, truncation, direction strengths, placement and the base ws as base64 float32), so a
picture can be traced back to (and later re-opened as) its latent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from editor.document import Layer
from editor.raster import to_uint8
from ganmodels.imageio import ImageReadError, ImageTooLargeError, encode_png, load_image_rgba

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"
MODEL_SUFFIXES = (".safetensors", ".pkl", ".pt", ".pth")
MODEL_FILTER = "GAN models and direction files (*.safetensors *.pkl *.pt *.pth);;All files (*)"
PNG_FILTER = "PNG images (*.png)"
METADATA_KEY = "gan-editor"
METADATA_FORMAT = "gan-editor-png/1"
MAX_DOCUMENT_PIXELS = 40_000_000  # float32 RGBA layers of larger images would need gigabytes


class ImageFileError(ValueError):
    """An image that cannot be opened or saved, with a message meant for the user."""


class ImageTooLarge(ImageFileError):
    """An image over the editor's size limit that ``read_image(..., downscale=True)`` can open smaller."""

    def __init__(self, message: str, downscaled_size: tuple[int, int], limit_message: str = "") -> None:
        super().__init__(message)
        self.downscaled_size = downscaled_size
        self.limit_message = limit_message or message  # the size and the limit, without the offer


def read_image(path: str | Path, *, downscale: bool = False) -> np.ndarray:
    """An image file -> straight RGBA float32 [H, W, 4] (raises ImageFileError; ImageTooLarge over
    ``MAX_DOCUMENT_PIXELS`` unless ``downscale``, which reduces it to fit)."""
    path = Path(path)
    try:
        rgba = load_image_rgba(path, max_pixels=MAX_DOCUMENT_PIXELS, downscale=downscale)
    except ImageTooLargeError as e:
        raise ImageTooLarge(str(e), e.downscaled_size, e.limit_message) from None
    except ImageReadError as e:
        raise ImageFileError(str(e)) from None
    except (OSError, ValueError, MemoryError) as e:
        raise ImageFileError(f"{path.name} cannot be opened ({e})") from None
    h, w = rgba.shape[:2]
    if w * h > MAX_DOCUMENT_PIXELS:
        raise ImageFileError(
            f"{path.name} is {w}x{h} pixels; the editor handles up to {MAX_DOCUMENT_PIXELS // 10**6} MP"
        )
    return np.ascontiguousarray(rgba, np.float32)


def encode_ws(ws: np.ndarray) -> dict[str, Any]:
    """float32 array -> JSON-safe {"shape", "dtype", "base64"} (little-endian)."""
    arr = np.ascontiguousarray(ws, dtype="<f4")
    return {"shape": list(arr.shape), "dtype": "float32", "base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_ws(data: dict[str, Any]) -> np.ndarray:
    """Inverse of ``encode_ws``."""
    raw = base64.b64decode(data["base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(data["shape"]).astype(np.float32)


def layer_metadata(layer: Layer) -> dict[str, Any]:
    """JSON-safe description of one layer (GAN layers include their latent)."""
    out: dict[str, Any] = {
        "id": layer.id,
        "name": layer.name,
        "kind": layer.kind,
        "visible": layer.visible,
        "opacity": layer.opacity,
        "blend": layer.blend,
    }
    if layer.gan is not None:
        out["gan"] = layer.gan.to_metadata()
        out["ws"] = encode_ws(layer.gan.ws)
        if layer.gan.mix is not None:
            out["gan"]["mix"]["ws"] = encode_ws(layer.gan.mix.ws)
    return out


def export_metadata(layers: Sequence[Layer], *, what: str, size: tuple[int, int]) -> dict[str, str]:
    """The PNG text chunks of an export: Software plus the ``gan-editor`` JSON (GAN layers only)."""
    from editor import __version__

    payload = {
        "format": METADATA_FORMAT,
        "export": what,
        "size": list(size),
        "layers": [layer_metadata(layer) for layer in layers if layer.gan is not None],
    }
    return {"Software": f"GAN Editor {__version__}", METADATA_KEY: json.dumps(payload)}


def write_png(
    path: str | Path,
    rgba: np.ndarray,
    *,
    text: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Straight RGBA float [H, W, 4] -> PNG (RGB when fully opaque), written atomically, text as iTXt chunks.

    ``progress(done, total)`` is called while the PNG is encoded and just before it replaces ``path``; an
    exception it raises (a cancel) stops the write and leaves ``path`` as it was."""
    path = Path(path)
    arr = to_uint8(rgba)
    if arr.shape[2] == 4 and (arr[..., 3] == 255).all():
        arr = arr[..., :3]
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value, zip=len(value) > 1024)
    # (0 of 0: how much is left is not known while the PNG is compressed, so a progress bar stays busy)
    check = (lambda: progress(0, 0)) if progress is not None else None
    tmp = path.with_name(path.name + ".tmp")
    try:
        data = encode_png(Image.fromarray(np.ascontiguousarray(arr)), check=check, pnginfo=info)
        tmp.write_bytes(data)
        if progress is not None:
            progress(1, 1)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ImageFileError(f"cannot write {path} ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_png_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded ``gan-editor`` chunk of an exported PNG ({} if there is none). Only the chunks before the
    pixels are read (``write_png`` puts its text there), so this does not decode the picture."""
    with Image.open(path) as im:
        raw = im.info.get(METADATA_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) and data.get("format") == METADATA_FORMAT else {}


def safe_file_stem(name: str) -> str:
    """``name`` usable as part of a file name on every system: path separators, characters Windows forbids and
    control characters become "_", surrounding spaces and dots go."""
    out = "".join("_" if c in '/\\:*?"<>|' or ord(c) < 32 else c for c in name).strip(" .")
    return out or "layer"
