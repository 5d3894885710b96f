"""OpenRaster (``.ora``) reading and writing, so Krita, GIMP and MyPaint open our layers.

An .ora file is a zip: ``mimetype`` (first, stored, ``image/openraster``), ``stack.xml`` (layers listed top to
bottom), one PNG per layer under ``data/``, ``mergedimage.png`` and ``Thumbnails/thumbnail.png``. Extra
application data (our latents, masks, tuned weights) goes under ``gan-editor/``, which other programs ignore.

Images are RGBA float32 [H, W, 4] in [0, 1], straight alpha. Writing is atomic (temp file + rename). Reading
a damaged file recovers what it can and reports the rest in ``OraDocument.warnings``.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from ganmodels.blending import ORA_OPS, blended_source, mode_from_ora
from ganmodels.imageio import encode_png, float_to_uint8

MIMETYPE = b"image/openraster"
EXTRA_DIR = "gan-editor/"


@dataclasses.dataclass
class OraLayer:
    """One raster layer of an .ora stack."""

    name: str
    pixels: np.ndarray  # float32 [h, w, 4] in [0, 1], straight alpha
    x: int = 0
    y: int = 0
    opacity: float = 1.0
    visible: bool = True
    blend: str = "normal"  # a mode of ganmodels.blending (the composite-op attribute)
    attrs: dict[str, str] = dataclasses.field(default_factory=dict)  # extra XML attributes (ours: gan-editor-*)


@dataclasses.dataclass
class OraDocument:
    width: int
    height: int
    layers: list[OraLayer]  # bottom to top (the editor's order); the file lists them top to bottom
    extras: dict[str, bytes] = dataclasses.field(default_factory=dict)  # name (under gan-editor/) -> bytes
    warnings: list[str] = dataclasses.field(default_factory=list)
    # What another program's file has that these layers cannot keep (blend modes, groups, pixels outside the
    # picture): shown as well as possible, lost when the file is written again.
    losses: list[str] = dataclasses.field(default_factory=list)


class OraError(ValueError):
    """An .ora file that cannot be opened at all."""


Progress = Callable[[int, int], None]  # (steps done, steps in all); raising from it stops the work


def _png_bytes(arr: np.ndarray, check: Callable[[], None] | None = None) -> bytes:
    """uint8 [H, W, 4] -> PNG bytes; zlib level 1: about twice as fast as the default 6 for a fifth more bytes
    (projects are saved often, and autosaved). ``check()`` runs between the encoder's blocks."""
    return encode_png(Image.fromarray(arr, "RGBA"), check=check, compress_level=1)


def composite(doc: OraDocument) -> np.ndarray:
    """Flatten visible layers with their blend modes and opacity: float32 [H, W, 4], straight alpha."""
    out = np.zeros((doc.height, doc.width, 4), np.float32)
    empty = True  # nothing drawn yet: the first layer is copied, not blended (the usual opaque background)
    for layer in doc.layers:
        if not layer.visible or layer.opacity <= 0:
            continue
        h, w = layer.pixels.shape[:2]
        y0, x0 = max(layer.y, 0), max(layer.x, 0)
        y1, x1 = min(layer.y + h, doc.height), min(layer.x + w, doc.width)
        if y1 <= y0 or x1 <= x0:
            continue
        src = layer.pixels[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x]
        dst = out[y0:y1, x0:x1]
        if empty:
            dst[...] = src
            dst[..., 3] *= layer.opacity
            dst[..., :3] *= dst[..., 3:4] > 0  # (as the blend gives: no colour where nothing is drawn)
            empty = False
            continue
        sa = src[..., 3:4] * layer.opacity
        da = dst[..., 3:4]
        oa = sa + da * (1 - sa)
        src_rgb = blended_source(layer.blend, dst[..., :3], da, src[..., :3])
        rgb = (src_rgb * sa + dst[..., :3] * da * (1 - sa)) / np.maximum(oa, 1e-8)
        dst[..., :3] = np.where(oa > 0, rgb, 0)
        dst[..., 3:4] = oa
    return out


def write_ora(path: str | Path, doc: OraDocument, *, progress: Progress | None = None) -> Path:
    """Write ``doc`` to ``path`` atomically.

    ``progress(done, total)`` is called as each PNG is encoded (and between its blocks, with the same numbers) and
    once more, ``(total, total)``, just before the finished file replaces ``path``: an exception it raises (e.g.
    the user cancelled) stops the write, and ``path`` stays as it was.
    """
    path = Path(path)
    total = len(doc.layers) + 2  # the layers' PNGs, the merged image, the zip
    done = 0

    def check() -> None:
        if progress is not None:
            progress(done, total)

    root = ET.Element("image", {"w": str(doc.width), "h": str(doc.height), "version": "0.0.5"})
    stack = ET.SubElement(root, "stack")
    files: list[tuple[str, bytes]] = []
    top: tuple[np.ndarray, bytes] | None = None  # the top visible layer's uint8 pixels and PNG
    for i, layer in enumerate(reversed(doc.layers)):  # top first
        src = f"data/layer{len(doc.layers) - 1 - i:03d}.png"
        attrs = {
            "name": layer.name,
            "src": src,
            "x": str(layer.x),
            "y": str(layer.y),
            "opacity": f"{layer.opacity:.4f}",
            "visibility": "visible" if layer.visible else "hidden",
            "composite-op": ORA_OPS[layer.blend],
        }
        attrs.update(layer.attrs)
        ET.SubElement(stack, "layer", attrs)
        check()
        pixels = float_to_uint8(layer.pixels)  # [h, w, 4]
        files.append((src, _png_bytes(pixels, check)))
        done += 1
        if top is None and layer.visible and layer.opacity > 0:
            top = (pixels, files[-1][1])
    check()
    merged = float_to_uint8(composite(doc))  # [H, W, 4]
    # An opaque top layer (e.g. a picture of one layer, the usual case) is what the merged image shows: its PNG is
    # reused instead of encoding the same pixels again.
    same = top is not None and np.array_equal(top[0], merged)
    files.append(("mergedimage.png", top[1] if same else _png_bytes(merged, check)))
    done += 1
    top = None  # (frees its copy of the layer)
    thumb = Image.fromarray(merged, "RGBA")
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    files.append(("Thumbnails/thumbnail.png", buf.getvalue()))
    for name, data in doc.extras.items():
        if name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"invalid extra name {name!r}")
        files.append((EXTRA_DIR + name, data))
    check()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
            z.writestr("stack.xml", ET.tostring(root, encoding="utf-8", xml_declaration=True), zipfile.ZIP_DEFLATED)
            for name, data in files:  # (PNGs are compressed already: deflating them again costs time, saves nothing)
                z.writestr(name, data, zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED)
        done = total
        check()
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # (a full disk leaves no half-written file behind; the old project stays)
        raise
    return path


MAX_LAYER_PIXELS = 100_000_000


def read_ora(path: str | Path) -> OraDocument:
    """Read an .ora; layers whose image is missing or damaged are skipped with a warning."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise OraError(f"{path.name} is not an OpenRaster file (not a zip: {e})") from None
    warnings: list[str] = []
    with z:
        names = set(z.namelist())
        try:
            root = ET.fromstring(z.read("stack.xml"))  # stdlib expat: no external entities
        except KeyError:
            raise OraError(f"{path.name} has no stack.xml") from None
        except (ET.ParseError, zipfile.BadZipFile, OSError, EOFError) as e:
            raise OraError(f"{path.name}: stack.xml is damaged ({e})") from None
        try:
            width, height = int(root.get("w", "0")), int(root.get("h", "0"))
        except ValueError:
            raise OraError(f"{path.name}: invalid image size in stack.xml") from None
        if not (0 < width and 0 < height and width * height <= MAX_LAYER_PIXELS):
            raise OraError(f"{path.name}: invalid image size {width}x{height}")
        layers: list[OraLayer] = []
        losses: dict[str, list[str]] = {"blend": [], "group": [], "outside": []}
        for el, visible, group_opacity in _walk_layers(root, losses["group"]):
            name = el.get("name", "layer")
            src = el.get("src", "")
            try:
                data = z.read(src)
                with Image.open(io.BytesIO(data)) as im:
                    if im.size[0] * im.size[1] > MAX_LAYER_PIXELS:
                        raise ValueError("layer too large")
                    pixels = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255
                x, y = int(float(el.get("x", "0"))), int(float(el.get("y", "0")))
                opacity = float(el.get("opacity", "1"))
            except (KeyError, OSError, ValueError, zipfile.BadZipFile, EOFError, Image.DecompressionBombError) as e:
                warnings.append(f"layer {name!r} could not be read ({type(e).__name__}: {e}); skipped")
                continue
            attrs = {k: v for k, v in el.attrib.items() if k.startswith("gan-editor-")}
            op = el.get("composite-op", "svg:src-over")
            blend = mode_from_ora(op)
            if blend is None:
                losses["blend"].append(f"{name} ({op.removeprefix('svg:')})")
            h, w = pixels.shape[:2]
            if x < 0 or y < 0 or x + w > width or y + h > height:
                losses["outside"].append(name)
            layers.append(
                OraLayer(
                    name=name,
                    pixels=pixels,
                    x=x,
                    y=y,
                    opacity=min(max(opacity, 0.0), 1.0) * group_opacity,
                    visible=visible and el.get("visibility", "visible") != "hidden",
                    blend=blend or "normal",
                    attrs=attrs,
                )
            )
        layers.reverse()  # bottom first
        lost = []
        if losses["blend"]:
            lost.append("blend modes, shown as Normal: " + ", ".join(losses["blend"]))
        if losses["group"]:
            lost.append("layer groups, flattened into a list (their visibility and opacity applied): "
                        + ", ".join(losses["group"]))  # fmt: skip
        if losses["outside"]:
            lost.append("pixels outside the picture, cut off: " + ", ".join(losses["outside"]))
        extras: dict[str, bytes] = {}
        for n in sorted(names):
            if n.startswith(EXTRA_DIR) and not n.endswith("/"):
                try:
                    extras[n[len(EXTRA_DIR) :]] = z.read(n)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    warnings.append(f"{n} could not be read ({e}); skipped")
    if not layers and root.find(".//layer") is not None:
        warnings.append("no layer could be read")
    return OraDocument(width=width, height=height, layers=layers, extras=extras, warnings=warnings, losses=lost)


def _walk_layers(
    parent: ET.Element, groups: list[str], *, depth: int = 0, visible: bool = True, opacity: float = 1.0
) -> Iterator[tuple[ET.Element, bool, float]]:
    """The ``layer`` elements under ``parent`` (the ``image`` element at first), top first, with the visibility
    and opacity of the stacks they are in; the names of nested stacks (groups, below the image's own stack) are
    added to ``groups``."""
    for el in parent:
        if el.tag == "layer":
            yield el, visible, opacity
        elif el.tag == "stack":
            if depth >= 1:
                groups.append(el.get("name", "group"))
            try:
                stack_opacity = min(max(float(el.get("opacity", "1")), 0.0), 1.0)
            except ValueError:
                stack_opacity = 1.0
            yield from _walk_layers(
                el,
                groups,
                depth=depth + 1,
                visible=visible and el.get("visibility", "visible") != "hidden",
                opacity=opacity * stack_opacity,
            )
