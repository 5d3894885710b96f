"""Latent directions: a unit vector in W applied with a strength to a range of synthesis layers."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ganmodels.networks import random_c


@dataclasses.dataclass(frozen=True)
class Direction:
    """A named edit ``ws[:, start:stop] += strength * vector``.

    vector: [w_dim]; ``layers`` is the half-open range of ws rows it moves (coarse rows = pose/shape,
    fine rows = colour/texture).
    """

    name: str
    vector: torch.Tensor  # [w_dim]
    layers: tuple[int, int]
    method: str = "manual"
    description: str = ""
    scale: float = 1.0  # typical strength for a slider end (strength range is [-3, 3] * scale)

    def apply(self, ws: torch.Tensor, strength: float) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> edited copy; strength 0 returns an identical copy."""
        out = ws.clone()
        if strength != 0:
            start, stop = self.layers
            out[:, start:stop] += strength * self.vector.to(ws.device, ws.dtype)
        return out

    def meta(self) -> dict[str, Any]:
        """JSON-safe description (the vector is stored as a tensor)."""
        return {
            "layers": list(self.layers),
            "method": self.method,
            "description": self.description,
            "scale": self.scale,
        }

    @classmethod
    def from_meta(cls, name: str, vector: torch.Tensor, info: dict[str, Any]) -> Direction:
        layers = info.get("layers", [0, 0])
        return cls(
            name=name,
            vector=vector,
            layers=(int(layers[0]), int(layers[1])),
            method=str(info.get("method", "manual")),
            description=str(info.get("description", "")),
            scale=float(info.get("scale", 1.0)),
        )


def direction_problem(d: Direction, *, w_dim: int, num_ws: int) -> str | None:
    """Why ``d`` cannot be used with a generator of ``num_ws`` x ``w_dim`` latents, or None when it can: a vector
    of another size, non-finite or all-zero values, a slider scale that is not a positive number, a layer range
    outside the generator's."""
    v = d.vector
    if tuple(v.shape) != (w_dim,):
        return f"has a vector of shape {tuple(v.shape)}, this model's latents have {w_dim} values"
    if not bool(torch.isfinite(v).all()):
        return "has values that are not finite numbers (NaN or infinity)"
    if not bool(v.abs().max() > 0):
        return "has an all-zero vector"
    if not (math.isfinite(d.scale) and d.scale > 0):
        return f"has a slider scale of {d.scale}, which must be a positive number"
    start, stop = d.layers
    if not 0 <= start < stop <= num_ws:
        return f"applies to layers {start}..{stop - 1}, this model has layers 0..{num_ws - 1}"
    return None


# --------------------------------------------------------------------------------------------------------------
# Finding directions


def style_layers(G: Any) -> list[tuple[int, str, torch.nn.Module]]:
    """(ws index, module name, layer) of every style-modulated layer (SynthesisLayer / ToRGBLayer) of G."""
    if hasattr(G.synthesis, "style_layers"):  # StyleGAN3 and other kinds describe their own layers
        return G.synthesis.style_layers()
    if not hasattr(G.synthesis, "block_ws_ranges"):
        raise ValueError("this kind of generator has no style layers (SeFa needs a style-based generator)")
    out = []
    for res, start, _count in G.synthesis.block_ws_ranges():
        block = getattr(G.synthesis, f"b{res}")
        idx = start
        if hasattr(block, "conv0"):
            out.append((idx, f"synthesis.b{res}.conv0", block.conv0))
            idx += 1
        out.append((idx, f"synthesis.b{res}.conv1", block.conv1))
        if hasattr(block, "torgb"):
            out.append((idx + 1, f"synthesis.b{res}.torgb", block.torgb))
    return out


def layer_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """StyleGAN's usual split of the ws rows: coarse (4-8 px: pose, shape, kind), middle (16-32 px: features),
    fine (64 px and up: colour, texture), as half-open row ranges; groups a small generator lacks are left out."""
    bounds = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, num_ws)}
    return {k: (a, min(b, num_ws)) for k, (a, b) in bounds.items() if a < min(b, num_ws)}


def _check_layers(G: Any, layers: tuple[int, int] | None) -> tuple[int, int]:
    start, stop = layers if layers is not None else (0, G.num_ws)
    if not 0 <= start < stop <= G.num_ws:
        raise ValueError(f"layer range must lie within [0, {G.num_ws}), got {start}..{stop}")
    return int(start), int(stop)


@torch.no_grad()
def sefa(G: Any, *, layers: tuple[int, int] | None = None, k: int = 10, prefix: str = "sefa") -> list[Direction]:
    """Closed-form factorisation (Shen & Zhou 2021): eigenvectors of A^T A, A = stacked style affine weights
    of the layers in range. Returns ``k`` orthonormal directions, strongest first; ``scale`` is set from the
    eigenvalue so sliders of different directions move the image by comparable amounts."""
    start, stop = _check_layers(G, layers)
    mats = [m.affine.weight * m.affine.weight_gain for i, _, m in style_layers(G) if start <= i < stop]  # [C, w_dim]
    A = torch.cat(mats).double()  # [sum C, w_dim]
    A = A / A.norm(dim=0, keepdim=True).clamp(min=1e-12)
    eigval, eigvec = torch.linalg.eigh(A.T @ A)  # ascending
    order = torch.argsort(eigval, descending=True)[:k]
    out = []
    for rank, idx in enumerate(order.tolist()):
        v = eigvec[:, idx].float()
        out.append(
            Direction(
                name=f"{prefix}{rank}",
                vector=v,
                layers=(start, stop),
                method="sefa",
                description=f"SeFa component {rank} of layers {start}-{stop - 1} (eigenvalue {eigval[idx]:.3g})",
                scale=float(_w_spread(G)),
            )
        )
    return out


def _w_spread(G: Any) -> float:
    """Twice the typical spread of w along one axis (rms of w - mean per dimension): a slider unit."""
    g = torch.Generator().manual_seed(0)
    device = next(G.parameters()).device
    z = torch.randn([1000, G.z_dim], generator=g).to(device)
    w = G.mapping(z, random_c(G, 1000, generator=g))[:, 0]
    return float((w - w.mean(0)).square().mean().sqrt() * 2)


@torch.no_grad()
def ganspace(
    G: Any,
    *,
    layers: tuple[int, int] | None = None,
    k: int = 10,
    num_samples: int = 10000,
    generator: torch.Generator,
    prefix: str = "pca",
) -> list[Direction]:
    """GANSpace (Härkönen et al. 2020): principal components of w over random z; ``scale`` = the component's
    standard deviation."""
    start, stop = _check_layers(G, layers)
    device = next(G.parameters()).device
    z = torch.randn([num_samples, G.z_dim], generator=generator).to(device)
    c = random_c(G, num_samples, generator=generator)
    w = torch.cat([G.mapping(z[i : i + 1000], c[i : i + 1000])[:, 0] for i in range(0, num_samples, 1000)])
    w = (w - w.mean(0)).double()  # [N, w_dim]
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    std = s / (num_samples - 1) ** 0.5
    return [
        Direction(
            name=f"{prefix}{i}",
            vector=vh[i].float(),
            layers=(start, stop),
            method="ganspace",
            description=f"principal component {i} of w (std {std[i]:.3g})",
            scale=float(std[i]),
        )
        for i in range(min(k, vh.shape[0]))
    ]


def labelled_direction(
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    name: str,
    layers: tuple[int, int],
    steps: int = 300,
    weight_decay: float = 0.05,
    description: str = "",
) -> Direction:
    """A direction from latents the user marked positive / negative: the normal of a logistic-regression
    boundary on w (ws rows inside ``layers`` averaged). positive / negative: [N, num_ws, w_dim] or [N, w_dim]."""
    if len(positive) < 1 or len(negative) < 1:
        raise ValueError("mark at least one positive and one negative example")

    def rows(ws: torch.Tensor) -> torch.Tensor:
        ws = ws.detach().float()
        return ws[:, layers[0] : layers[1]].mean(1) if ws.ndim == 3 else ws

    x = torch.cat([rows(positive), rows(negative)])  # [N, w_dim]
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))])
    mean = x.mean(0)
    xc = x - mean
    scale = xc.square().mean().sqrt().clamp(min=1e-6) if len(x) > 1 else torch.ones([])
    xn = xc / scale  # one global scale: keeps the geometry of W (per-dimension scaling would tilt the normal)
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros([], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xn @ w + b, y) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    normal = w.detach().float()
    if normal.norm() < 1e-12:
        raise ValueError("the marked examples do not separate along any direction")
    normal = normal / normal.norm()
    proj = xc @ normal
    return Direction(
        name=name,
        vector=normal,
        layers=layers,
        method="labelled",
        description=description or f"learned from {len(positive)} positive and {len(negative)} negative examples",
        scale=float(max(proj.std().item() if len(proj) > 1 else 1.0, 1e-3)),
    )


# --------------------------------------------------------------------------------------------------------------
# What a direction does, measured


# property -> (word when it grows, word when it shrinks)
EFFECT_WORDS: dict[str, tuple[str, str]] = {
    "size": ("larger", "smaller"),
    "brightness": ("lighter", "darker"),
    "saturation": ("more colourful", "greyer"),
    "warmth": ("warmer", "cooler"),
    "x": ("moves right", "moves left"),
    "y": ("moves down", "moves up"),
}


def picture_properties(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Simple properties of pictures [N, 3, H, W] in [-1, 1], each [N]: the subject's size (share of pixels that
    differ from a white background), its brightness, saturation and warmth (red minus blue), and the position of
    its centre (x, y in [0, 1]). Pictures with no white background count as all subject."""
    rgb = ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)  # [N, H, W, 3]
    mask = ((1 - rgb).amax(dim=3) > 0.1).float()  # [N, H, W]
    area = mask.sum(dim=(1, 2)).clamp(min=1)  # [N]

    def mean(v: torch.Tensor) -> torch.Tensor:  # [N, H, W] -> [N] over the subject
        return (v * mask).sum(dim=(1, 2)) / area

    h, w = mask.shape[1:]
    ys = (torch.arange(h, dtype=torch.float32, device=rgb.device) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32, device=rgb.device) + 0.5) / w
    lum = rgb @ torch.tensor([0.299, 0.587, 0.114], device=rgb.device)  # [N, H, W]
    return {
        "size": mask.mean(dim=(1, 2)),
        "brightness": mean(lum),
        "saturation": mean(rgb.amax(dim=3) - rgb.amin(dim=3)),
        "warmth": mean(rgb[..., 0] - rgb[..., 2]),
        "x": mean(xs.expand(h, w).expand_as(mask)),
        "y": mean(ys[:, None].expand(h, w).expand_as(mask)),
    }


@torch.no_grad()
def measure_effects(
    render: Any,
    ws: torch.Tensor,
    direction: Direction,
    *,
    strength: float = 2.0,
    base: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """How far ``direction`` moves each of :func:`picture_properties`, in standard deviations of that property
    among the pictures of ``ws`` [N, num_ws, w_dim] (N >= 2), going from ``-strength`` to ``+strength`` slider units
    (times the direction's scale); a property counts only where most pictures move the same way (else 0).
    ``"pixels"`` is the mean change of a pixel between the two ends, in [0, 1] units.
    ``render(ws) -> images [N, 3, H, W] in [-1, 1]``; ``base``: the :func:`picture_properties` of ``render(ws)``
    when the caller has them (measuring several directions on the same pictures)."""
    if len(ws) < 2:
        raise ValueError("measure a direction on at least two pictures")
    if base is None:
        base = picture_properties(render(ws))
    low_images = render(direction.apply(ws, -strength * direction.scale))  # [N, 3, H, W]
    high_images = render(direction.apply(ws, strength * direction.scale))
    lo, hi = picture_properties(low_images), picture_properties(high_images)
    out = {"pixels": float((high_images.float() - low_images.float()).abs().mean()) / 2}
    for name in EFFECT_WORDS:
        delta = hi[name] - lo[name]  # [N]
        spread = float(base[name].std().clamp(min=1e-3))
        agree = float((torch.sign(delta) == torch.sign(delta.mean())).float().mean())
        out[name] = float(delta.mean()) / spread if agree >= 0.75 else 0.0
    return out


def describe_effects(effects: dict[str, float], *, threshold: float = 0.5, most: int = 3) -> str:
    """Words for :func:`measure_effects`: 'to +: larger, darker; to -: smaller, lighter' (the slider's two ends);
    where no simple property changes steadily, how much the picture changes."""
    if effects.get("pixels", 1.0) < 0.03:
        return "a subtle change"
    moved = [k for k in EFFECT_WORDS if abs(effects.get(k, 0.0)) >= threshold]
    strong = sorted(moved, key=lambda k: -abs(effects[k]))[:most]
    if not strong:
        if effects.get("pixels", 1.0) < 0.08:
            return "changes details; no steady change of size, colour or position"
        return "changes shape or kind; no steady change of size, colour or position"
    right = [EFFECT_WORDS[k][0 if effects[k] > 0 else 1] for k in strong]
    left = [EFFECT_WORDS[k][1 if effects[k] > 0 else 0] for k in strong]
    return f"to +: {', '.join(right)}; to -: {', '.join(left)}"


_ENDS = re.compile(r"to \+: ([^;()]+); to -: ([^;()]+?)(?: \(|$)")


def effect_ends(description: str) -> tuple[str, str] | None:
    """The slider's two ends as :func:`describe_effects` words them at the start of a description ('to +: larger,
    darker; to -: smaller, lighter (...)'): ``(minus_words, plus_words)``, e.g. ``("smaller, lighter", "larger,
    darker")``; None for a description worded otherwise (a direction file of other tools, "a subtle change")."""
    m = _ENDS.match(description)
    return (m.group(2).strip(), m.group(1).strip()) if m else None


@torch.no_grad()
def describe_directions(
    G: Any, directions: list[Direction], *, seeds: int = 8, truncation_psi: float = 0.7
) -> list[Direction]:
    """The directions with what each does (:func:`measure_effects` on ``seeds`` samples of G) put in front of
    their descriptions. Renders ``seeds * (1 + 2 * len(directions))`` pictures."""
    from ganmodels.generate import seeds_to_ws, synthesize

    ws = seeds_to_ws(G, list(range(seeds)), truncation_psi=truncation_psi)  # [seeds, num_ws, w_dim]

    def render(v: torch.Tensor) -> torch.Tensor:
        return synthesize(G, v)

    base = picture_properties(render(ws))
    out = []
    for d in directions:
        words = describe_effects(measure_effects(render, ws, d, base=base))
        out.append(dataclasses.replace(d, description=f"{words} ({d.description})" if d.description else words))
    return out


# --------------------------------------------------------------------------------------------------------------
# Sidecar files


def save_directions(path: str | Path, directions: dict[str, Direction] | list[Direction]) -> Path:
    """Write a direction set to a sidecar ``.safetensors`` (vectors as tensors, the rest as JSON metadata)."""
    from ganmodels.stio import save_safetensors

    items = directions.values() if isinstance(directions, dict) else directions
    tensors = {d.name: d.vector.detach().float().cpu() for d in items}
    meta = {"format": "gan-editor-directions/1", "directions": json.dumps({d.name: d.meta() for d in items})}
    return save_safetensors(path, tensors, meta)


def load_directions(path: str | Path) -> dict[str, Direction]:
    """Read a sidecar written by ``save_directions`` (no code is ever executed from the file)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "gan-editor-directions/1":
                raise ValueError(f"{path.name} is not a gan-editor direction file")
            info = json.loads(meta["directions"])
            return {name: Direction.from_meta(name, f.get_tensor(name).float(), info[name]) for name in info}
    except (SafetensorError, OSError, KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name}: cannot read directions ({e})") from None


def is_direction_file(path: str | Path) -> bool:
    """Whether ``path`` is a direction sidecar (reads only the safetensors header)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format") == "gan-editor-directions/1"
    except (SafetensorError, OSError, ValueError):
        return False
