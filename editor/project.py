"""Projects as OpenRaster (.ora): our layers as .ora layers (Krita and GIMP open them), and what only we use
(GAN latents, layer masks, layer kinds, pivotal-tuning weights) as extra files under ``gan-editor/``. No widgets
here."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from editor.document import Layer, make_gan_layer, make_raster_layer
from editor.latent import GanState, LatentMix
from editor.pti import PtiWeights, new_pti_key, pti_from_bytes, pti_to_bytes
from editor.raster import Rect
from ganmodels.blending import BLEND_MODES
from ganmodels.ora import OraDocument, OraLayer, Progress, read_ora, write_ora

FORMAT = "gan-editor-project/1"


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class LoadedProject(NamedTuple):
    """What ``load_project`` read."""

    width: int
    height: int
    layers: list[Layer]  # bottom first
    model_path: str | None
    warnings: list[str]
    pti_weights: dict[str, PtiWeights]  # by the (new) keys the layers' ``GanState.pti_weights`` name
    losses: tuple[str, ...] = ()  # what the file has that the layers cannot keep (``OraDocument.losses``)


def save_project(
    path: str | Path,
    width: int,
    height: int,
    layers: list[Layer],
    *,
    model_path: str | None,
    pti_weights: Mapping[str, PtiWeights] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write layers (bottom first) to an .ora file, atomically. ``pti_weights`` (``Document.pti_weights``) holds the
    tuned weights GAN layers name; each set is stored once, however many layers share it. A layer whose weights
    are not given is saved as rendering with the base model. ``progress`` as in ``ganmodels.ora.write_ora`` (it
    may raise to cancel; the file is then left as it was)."""
    ora_layers = []
    extras: dict[str, bytes] = {}
    meta_layers = []
    pti_files: dict[str, str] = {}  # weights key -> extra file
    for i, layer in enumerate(layers):
        ora_layers.append(
            OraLayer(
                name=layer.name,
                pixels=layer.pixels,
                opacity=layer.opacity,
                visible=layer.visible,
                blend=layer.blend,
                attrs={"gan-editor-kind": layer.kind, "gan-editor-index": str(i)},
            )
        )
        entry: dict = {"index": i, "name": layer.name, "kind": layer.kind}
        if layer.mask.any():
            extras[f"layers/{i}-mask.npy"] = _npy(layer.mask.astype(np.float32))
            entry["mask"] = f"layers/{i}-mask.npy"
        if layer.gan is not None:
            extras[f"layers/{i}-ws.npy"] = _npy(np.asarray(layer.gan.ws, np.float32))
            entry["gan"] = {**layer.gan.to_metadata(), "ws": f"layers/{i}-ws.npy", "pti_weights": None}
            if layer.gan.mix is not None:
                extras[f"layers/{i}-mix-ws.npy"] = _npy(np.asarray(layer.gan.mix.ws, np.float32))
                entry["gan"]["mix"] = {**layer.gan.mix.to_metadata(), "ws": f"layers/{i}-mix-ws.npy"}
                source = next((j for j, la in enumerate(layers) if la.id == layer.gan.mix.source_id), None)
                entry["gan"]["mix"]["source_index"] = source
            key = layer.gan.pti_weights
            pti = (pti_weights or {}).get(key) if key else None
            if key and pti is not None:
                if key not in pti_files:
                    pti_files[key] = f"layers/{i}-pti.safetensors"
                    extras[pti_files[key]] = pti_to_bytes(pti)
                entry["gan"]["pti_weights"] = pti_files[key]
        meta_layers.append(entry)
    extras["project.json"] = json.dumps(
        {"format": FORMAT, "model_path": model_path, "layers": meta_layers}, indent=1
    ).encode()
    doc = OraDocument(width=width, height=height, layers=ora_layers, extras=extras)
    return write_ora(path, doc, progress=progress)


def load_project(
    path: str | Path, *, model_key: str = "", model_name: str = "", model_path: str | Path | None = None
) -> LoadedProject:
    """Read an .ora file. GAN layers keep their latent; they are bound to ``model_key`` when they were made with the
    loaded model (``model_name`` and, when both are known, the same file ``model_path``, or a stored file that is
    not on this machine: a project moved here), else they re-render after that model is opened. Tuned weights get
    new keys (the caller registers them). Anything damaged is skipped with a warning; layers of foreign .ora files
    become raster layers."""
    doc = read_ora(path)
    warnings = list(doc.warnings)
    meta: dict = {}
    if "project.json" in doc.extras:
        try:
            meta = json.loads(doc.extras["project.json"])
        except (json.JSONDecodeError, UnicodeDecodeError):
            warnings.append("project.json is damaged: GAN latents and masks were not restored")
    entries = {e.get("index"): e for e in meta.get("layers", []) if isinstance(e, dict)}
    ids_by_index: dict[int, str] = {}  # saved layer index -> the new layer's id
    mix_sources: list[tuple[Layer, object]] = []
    layers: list[Layer] = []
    pti_weights: dict[str, PtiWeights] = {}
    pti_keys: dict[str, str | None] = {}  # extra file -> key (None: could not be read)
    for ol in doc.layers:
        pixels = np.zeros((doc.height, doc.width, 4), np.float32)
        h, w = ol.pixels.shape[:2]
        y0, x0 = max(ol.y, 0), max(ol.x, 0)
        y1, x1 = min(ol.y + h, doc.height), min(ol.x + w, doc.width)
        if y1 > y0 and x1 > x0:
            pixels[y0:y1, x0:x1] = ol.pixels[y0 - ol.y : y1 - ol.y, x0 - ol.x : x1 - ol.x]
        entry = entries.get(_int(ol.attrs.get("gan-editor-index")), {})
        layer = None
        gan = entry.get("gan")
        if isinstance(gan, dict):
            pti_file = gan.get("pti_weights")
            if isinstance(pti_file, str) and pti_file not in pti_keys:
                try:
                    pti = pti_from_bytes(doc.extras[pti_file])
                    pti_keys[pti_file] = new_pti_key(str(gan.get("model", "")) or pti.model_name)
                    pti_weights[pti_keys[pti_file]] = pti
                except (KeyError, ValueError) as e:
                    pti_keys[pti_file] = None
                    warnings.append(f"layer {ol.name!r}: tuned weights could not be restored ({e}); base model used")
            try:
                ws = _from_npy(doc.extras[gan["ws"]]).astype(np.float32)
                mix = _mix(gan.get("mix"), lambda e: _from_npy(doc.extras[e["ws"]]), ol.name, warnings)
                state = _gan_state(
                    gan,
                    ws,
                    model_key=model_key if _same_model(gan, model_name, model_path) else "",
                    size=(doc.width, doc.height),
                    pti_key=pti_keys.get(pti_file) if isinstance(pti_file, str) else None,
                    mix=mix,
                )
                layer = make_gan_layer(pixels, state, name=ol.name)
            except (KeyError, ValueError, TypeError, OSError) as e:
                warnings.append(f"layer {ol.name!r}: latent could not be restored ({e}); kept as pixels")
        if layer is None:
            layer = make_raster_layer(doc.width, doc.height, name=ol.name, pixels=pixels)
        layer.visible = ol.visible
        layer.opacity = ol.opacity
        layer.blend = ol.blend
        if "mask" in entry:
            try:
                mask = _from_npy(doc.extras[entry["mask"]]).astype(np.float32)
                if mask.shape == layer.mask.shape:
                    layer.mask = mask
                else:
                    warnings.append(f"layer {ol.name!r}: mask has the wrong size; dropped")
            except (KeyError, ValueError, OSError) as e:
                warnings.append(f"layer {ol.name!r}: mask could not be restored ({e})")
        layers.append(layer)
        saved_index = _int(ol.attrs.get("gan-editor-index"))
        if saved_index is not None:
            ids_by_index[saved_index] = layer.id
        mix = gan.get("mix") if isinstance(gan, dict) else None
        if layer.gan is not None and layer.gan.mix is not None and isinstance(mix, dict):
            mix_sources.append((layer, mix.get("source_index")))
    for layer, index in mix_sources:  # (layers get new ids: the mix names its source by the new one)
        if isinstance(index, int) and index in ids_by_index and layer.gan is not None and layer.gan.mix is not None:
            mix = dataclasses.replace(layer.gan.mix, source_id=ids_by_index[index])
            layer.gan = layer.gan.replace(mix=mix)
    return LoadedProject(
        doc.width, doc.height, layers, meta.get("model_path"), warnings, pti_weights, tuple(doc.losses)
    )


def _same_model(gan: Mapping, model_name: str, model_path: str | Path | None) -> bool:
    """Whether a stored GAN layer (its project entry) was made with the loaded model: the same name, and the same
    file unless the stored one is not on this machine (two different files of the same name are not confused)."""
    if not model_name or gan.get("model") != model_name:
        return False
    stored = gan.get("model_path")
    if not stored or model_path is None or Path(stored) == Path(model_path):
        return True
    return not Path(stored).exists()


def _gan_state(
    gan: Mapping,
    ws: np.ndarray,
    *,
    model_key: str,
    size: tuple[int, int],
    pti_key: str | None = None,
    mix: LatentMix | None = None,
) -> GanState:
    """A GAN layer's state from its stored description (``GanState.to_metadata``) and latent ws [num_ws, w_dim]."""
    return GanState(
        model_key=model_key,
        model_path=gan.get("model_path"),
        model_name=str(gan.get("model", "")),
        ws=np.asarray(ws, np.float32),
        placement=Rect(*gan.get("placement", [0, 0, *size])),
        seed=gan.get("seed"),
        class_index=int(gan["class"]) if isinstance(gan.get("class"), int) else None,
        anchor=int(gan["anchor"]) if isinstance(gan.get("anchor"), int) else None,
        truncation=float(gan.get("truncation", 1.0)),
        strengths={str(k): float(v) for k, v in dict(gan.get("directions", {})).items()},
        noise_mode=str(gan.get("noise_mode", "const")),
        pti_weights=pti_key,
        mix=mix,
    )


def _mix(entry: object, read_ws: Callable[[Mapping], np.ndarray], name: str, warnings: list[str]) -> LatentMix | None:
    """A layer's stored mix (``read_ws(entry)`` reads its ws), or None (a damaged one is dropped with a warning:
    the layer shows without it)."""
    if not isinstance(entry, dict):
        return None
    try:
        return LatentMix(
            np.asarray(read_ws(entry), np.float32),
            source=str(entry.get("source", "")),
            part=str(entry.get("part", "all")),
            amount=float(entry.get("amount", 0.5)),
        )
    except (KeyError, ValueError, TypeError, OSError) as e:
        warnings.append(f"layer {name!r}: its mix with another layer could not be restored ({e}); left out")
        return None


def gan_layer_from_png(
    meta: Mapping,
    rgba: np.ndarray,
    *,
    model_key: str = "",
    model_name: str = "",
    model_path: str | Path | None = None,
) -> tuple[Layer | None, list[str]]:
    """The GAN layer an exported layer PNG came from: its pixels ``rgba`` [H, W, 4] with the latent, directions and
    blend settings of its ``gan-editor`` chunk (``fileio.read_png_metadata``), bound to ``model_key`` as
    ``load_project`` binds them. None when the PNG is not one GAN layer's export of this size (a flattened export
    is a picture: its layers are only in the project). Tuned weights are not in PNGs: the layer edits with the base
    model, which a warning says."""
    from editor.fileio import decode_ws

    entries = meta.get("layers")
    h, w = rgba.shape[:2]
    if meta.get("export") != "layer" or not isinstance(entries, list) or len(entries) != 1:
        return None, []
    entry = entries[0]
    if meta.get("size") != [w, h] or not isinstance(entry, dict) or not isinstance(entry.get("gan"), dict):
        return None, []
    gan, name, warnings = entry["gan"], str(entry.get("name") or "Layer"), []
    try:
        mix = _mix(gan.get("mix"), lambda e: decode_ws(e["ws"]), name, warnings)
        ws = decode_ws(entry["ws"])
        if ws.ndim != 2:
            raise ValueError(f"a latent of shape {list(ws.shape)}")
        state = _gan_state(
            gan,
            ws,
            model_key=model_key if _same_model(gan, model_name, model_path) else "",
            size=(w, h),
            mix=mix,
        )
        layer = make_gan_layer(np.ascontiguousarray(rgba, np.float32), state, name=name)
        layer.opacity = min(max(float(entry.get("opacity", 1.0)), 0.0), 1.0)
    except (KeyError, ValueError, TypeError) as e:
        return None, [f"the latent in this PNG could not be restored ({e}); opened as a picture"]
    if gan.get("pti_weights"):
        warnings.append(
            f"layer {name!r} was tuned (pivotal tuning): the weights are only in projects, not in PNGs, so its "
            "sliders render with the base model"
        )
    blend = entry.get("blend")
    if isinstance(blend, str) and blend in BLEND_MODES:
        layer.blend = blend
    return layer, warnings


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None
