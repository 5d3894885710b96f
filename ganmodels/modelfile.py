"""The native model file: one ``.safetensors`` holding tensors plus JSON metadata.

Layout (all keys of the generator keep NVIDIA's state_dict names):

- tensors ``generator.<name>``: the (EMA) generator weights, fp16 or fp32
- tensors ``directions.<name>``: latent directions, [w_dim] each
- tensors ``<component>.<name>`` for optional extra networks (an encoder, an inpainter, ...); a component saved
  with ``quantize`` keeps its weight matrices / kernels as int8 with one fp32 scale per output row in
  ``q8scale.<component>.<name>`` (its ``components`` entry says ``"storage": "int8-rows"``)
- metadata ``format`` = ``gan-editor-model/1``, ``generator_config`` (GeneratorConfig JSON), ``card``
  (training data, licence, kimg, metrics ...), ``directions`` (name -> layer range, method, description),
  ``components`` (name -> {"kind", "config"}).
- optional metadata ``generator_kind``: ``stylegan2`` when absent, ``stylegan3`` (StyleGAN3Config JSON) or
  ``dcgan`` (DCGANConfig JSON); the config class names its kind in ``generator_kind``.

Loading never unpickles anything: safetensors stores raw tensors and strings only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ganmodels.directions import Direction, direction_problem
from ganmodels.networks import Generator, GeneratorConfig
from ganmodels.stio import save_safetensors

FORMAT = "gan-editor-model/1"


class ModelFileError(ValueError):
    """A model file that cannot be read, with a message meant for the user."""


def _config_class(kind: str) -> Any:
    """The config dataclass of a generator kind (imported lazily: those modules import this one)."""
    if kind == "stylegan2":
        return GeneratorConfig
    if kind == "stylegan3":
        from ganmodels.stylegan3 import StyleGAN3Config

        return StyleGAN3Config
    if kind == "dcgan":
        from ganmodels.importers.dcgan import DCGANConfig

        return DCGANConfig
    raise ModelFileError(f"unknown generator kind {kind!r} (written by a newer version of this app?)")


@dataclasses.dataclass
class GanModel:
    """A loaded generator with everything the editor needs to know about it.

    ``G`` is a StyleGAN2 Generator, a ``stylegan3.Generator`` or a DCGAN adapter, with ``config`` to match.
    """

    G: Generator
    config: GeneratorConfig
    card: dict[str, Any] = dataclasses.field(default_factory=dict)
    directions: dict[str, Direction] = dataclasses.field(default_factory=dict)
    components: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    path: Path | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # what was left out on loading, for the user
    anchors: Any = None  # ganmodels.anchors.AnchorBank: latents of training pictures to draw samples around

    @property
    def name(self) -> str:
        """Display name: the card's name, else the file stem."""
        return str(self.card.get("name") or (self.path.stem if self.path else "model"))

    @property
    def kind(self) -> str:
        """Generator kind: stylegan2, stylegan3 or dcgan."""
        return getattr(self.config, "generator_kind", "stylegan2")

    @property
    def num_ws(self) -> int:
        return self.G.num_ws

    @property
    def w_dim(self) -> int:
        return self.G.w_dim

    @property
    def resolution(self) -> int:
        return self.G.img_resolution


def _to_storage(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    t = t.detach().to("cpu").contiguous()
    if dtype is not None and t.is_floating_point():
        t = t.to(dtype)
    return t


Q8_PREFIX = "q8scale."
Q8_STORAGE = "int8-rows"


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight-only int8: (q int8 [same shape], scale fp32 [rows]) with t ~ q * scale per output row (dim 0)."""
    w = t.detach().float().flatten(1)  # [rows, rest]
    scale = (w.abs().amax(1) / 127).clamp_min(1e-12)  # [rows]
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.view_as(t).contiguous(), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 tensor from :func:`quantize_rows`'s (q, scale)."""
    return (q.float().flatten(1) * scale.float()[:, None]).view(q.shape)


def save_model(
    path: str | Path,
    G: Generator,
    *,
    config: GeneratorConfig,
    card: Mapping[str, Any] | None = None,
    directions: Mapping[str, Direction] | None = None,
    components: Mapping[str, tuple[str, Mapping[str, Any], Mapping[str, torch.Tensor]]] | None = None,
    dtype: torch.dtype | None = None,
    quantize: Iterable[str] = (),
) -> Path:
    """Write ``G`` (and directions / extra components) to ``path``.

    ``dtype`` None keeps each tensor's dtype (fp32 round trips bit-exactly); ``torch.float16`` halves the size.
    ``components`` maps a name to (kind, config, state_dict) for extra networks shipped with the model; those named
    in ``quantize`` store their floating-point tensors of 2 or more dimensions as int8 per output row (a quarter of
    fp32; for networks such as the encoder whose output only starts an optimisation).
    The file is written to a temporary name and renamed, so a crash never leaves half a model.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in G.state_dict().items():
        tensors[f"generator.{k}"] = _to_storage(v, dtype)
    dir_meta: dict[str, Any] = {}
    for name, d in (directions or {}).items():
        tensors[f"directions.{name}"] = _to_storage(d.vector, torch.float32)
        dir_meta[name] = d.meta()
    comp_meta: dict[str, Any] = {}
    quantize = set(quantize)
    if quantize - set(components or {}):
        raise ValueError(f"no component to quantize named {sorted(quantize - set(components or {}))}")
    for name, (kind, cfg, sd) in (components or {}).items():
        if name in ("generator", "directions", Q8_PREFIX.rstrip(".")) or "." in name:
            raise ValueError(f"invalid component name {name!r}")
        comp_meta[name] = {"kind": kind, "config": dict(cfg)}
        if name in quantize:
            comp_meta[name]["storage"] = Q8_STORAGE
        for k, v in sd.items():
            if name in quantize and v.is_floating_point() and v.ndim >= 2:
                tensors[f"{name}.{k}"], tensors[f"{Q8_PREFIX}{name}.{k}"] = quantize_rows(v)
            else:
                tensors[f"{name}.{k}"] = _to_storage(v, dtype)
    metadata = {
        "format": FORMAT,
        "generator_config": json.dumps(config.to_dict()),
        "card": json.dumps(dict(card or {})),
        "directions": json.dumps(dir_meta),
        "components": json.dumps(comp_meta),
    }
    kind = getattr(config, "generator_kind", "stylegan2")
    if kind != "stylegan2":
        metadata["generator_kind"] = kind
    return save_safetensors(path, tensors, metadata)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded JSON metadata of a model file, without loading weights."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path.name} is not a readable .safetensors model file ({e})") from None
    if raw.get("format") != FORMAT:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a gan-editor model (format={raw.get('format')!r}); "
            "use 'ganmodels export' for a training snapshot, 'ganmodels convert' for other checkpoints"
        )
    out: dict[str, Any] = {"format": raw["format"], "generator_kind": raw.get("generator_kind", "stylegan2")}
    for key in ("generator_config", "card", "directions", "components"):
        try:
            out[key] = json.loads(raw.get(key, "{}"))
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{path.name}: metadata field {key!r} is not valid JSON ({e})") from None
    return out


def generator_storage_dtype(path: str | Path) -> torch.dtype:
    """The dtype the file stores its generator's floating-point weights in (e.g. float16 for shipped models)."""
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            if k.startswith("generator."):
                t = f.get_tensor(k)
                if t.is_floating_point():
                    return t.dtype
    return torch.float32


def load_component(path: str | Path, name: str) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(kind, config, state_dict) of an extra network stored in a model file."""
    meta = read_metadata(path)
    if name not in meta["components"]:
        raise ModelFileError(f"{Path(path).name} has no component {name!r}")
    prefix = f"{name}."
    info = meta["components"][name]
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        sd = {k[len(prefix) :]: f.get_tensor(k) for k in keys if k.startswith(prefix)}
        if info.get("storage") == Q8_STORAGE:  # int8 rows: back to float32
            for k, q in sd.items():
                if q.dtype == torch.int8:
                    scale_key = f"{Q8_PREFIX}{name}.{k}"
                    if scale_key not in keys:
                        raise ModelFileError(f"{Path(path).name}: the int8 tensor {name}.{k} has no scale")
                    scale = f.get_tensor(scale_key)
                    if scale.shape != (q.shape[0],):
                        raise ModelFileError(f"{Path(path).name}: the scale of {name}.{k} has the wrong shape")
                    sd[k] = dequantize_rows(q, scale)
    return info["kind"], info["config"], sd


def state_dict_problems(
    expected: Mapping[str, Sequence[int]], state: Mapping[str, torch.Tensor], *, optional: Iterable[str] = ()
) -> list[str]:
    """What keeps ``state`` from loading into a module with these parameter shapes ([] when it fits): missing and
    unexpected keys and wrong shapes, each with the first offenders. Keys in ``optional`` may be missing."""
    missing = sorted(set(expected) - set(state) - set(optional))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    if wrong:
        shapes = [f"{k} {list(state[k].shape)} != {list(expected[k])}" for k in wrong[:3]]
        problems.append(f"{len(wrong)} wrong shapes (e.g. {shapes})")
    return problems


def load_model(path: str | Path, *, device: torch.device | str = "cpu") -> GanModel:
    """Load a native model file into an eval-mode fp32 Generator on ``device``."""
    path = Path(path)
    meta = read_metadata(path)
    config_class = _config_class(meta["generator_kind"])
    try:
        config = config_class.from_dict(meta["generator_config"])
        G = config.build()
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path.name}: invalid generator config ({e})") from None
    sd: dict[str, torch.Tensor] = {}
    dir_vectors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                if k.startswith("generator."):
                    sd[k[len("generator.") :]] = f.get_tensor(k)
                elif k.startswith("directions."):
                    dir_vectors[k[len("directions.") :]] = f.get_tensor(k)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path.name}: damaged tensor data ({e})") from None
    expected = G.state_dict()
    if "mapping.c_probs" in expected and "mapping.c_probs" not in sd:
        sd["mapping.c_probs"] = expected["mapping.c_probs"]  # e.g. converted from NVIDIA's: sample classes uniformly
    problems = state_dict_problems({k: v.shape for k, v in expected.items()}, sd)
    if problems:
        raise ModelFileError(f"{path.name}: weights do not match its config: {'; '.join(problems)}")
    G.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()})
    G.eval().requires_grad_(False).to(device)
    directions, notes = {}, []
    for name, info in meta["directions"].items():
        if name not in dir_vectors:
            raise ModelFileError(f"{path.name}: direction {name!r} has no vector")
        try:
            d = Direction.from_meta(name, dir_vectors[name].float(), info)
            problem = direction_problem(d, w_dim=G.w_dim, num_ws=G.num_ws)
        except (TypeError, ValueError, IndexError, AttributeError) as e:
            problem = f"is not described properly ({e})"
        if problem is not None:  # the model is fine without it
            notes.append(f"direction {name!r} left out: it {problem}")
            continue
        directions[name] = d
    anchors = None
    if "anchors" in meta["components"]:
        from ganmodels.anchors import read_anchors

        try:
            anchors = read_anchors(path, G)
        except ModelFileError as e:  # the model is fine without them: plain samples
            notes.append(f"anchors left out: {e}")
    return GanModel(
        G=G,
        config=config,
        card=meta["card"],
        directions=directions,
        components=meta["components"],
        path=path,
        notes=notes,
        anchors=anchors,
    )
