"""The latent state of a GAN layer (an immutable value) and the maths that turns it into the ws to render."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from editor.raster import Rect
from ganmodels.directions import Direction, layer_groups

MIX_PARTS = ("all", "coarse", "middle", "fine")  # which ws rows a mix takes (see ``mix_rows``)


def _frozen_array(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out


def sample_name(seed: int, class_index: int | None = None) -> str:
    """The name a new sample's layer gets: "Sample 5", or "Sample 5, class 3" for a conditional model."""
    return f"Sample {seed}" if class_index is None else f"Sample {seed}, class {class_index}"


def mix_rows(part: str, num_ws: int) -> tuple[int, int]:
    """The half-open ws row range of a mix part: every row, or one of ``ganmodels.directions.layer_groups``
    ((0, 0) when the generator has no such rows)."""
    if part == "all":
        return 0, num_ws
    if part not in MIX_PARTS:
        raise ValueError(f"mix part must be one of {MIX_PARTS}, got {part!r}")
    return layer_groups(num_ws).get(part, (0, 0))


@dataclasses.dataclass(frozen=True, eq=False)
class LatentMix:
    """Part of another GAN layer blended into this one (StyleGAN style mixing, or a morph with ``part="all"``):
    the rows of ``part`` move ``amount`` of the way from this layer's latent to ``ws``, the other layer's rendered
    latent when it was chosen (a copy: later edits of that layer, or deleting it, do not change this one)."""

    ws: np.ndarray  # [num_ws, w_dim] float32, read-only
    source: str  # the other layer's name when it was chosen
    source_id: str = ""  # its layer id (to show the choice while it exists)
    part: str = "all"
    amount: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "ws", _frozen_array(self.ws))
        object.__setattr__(self, "amount", float(min(max(self.amount, 0.0), 1.0)))
        if self.part not in MIX_PARTS:
            raise ValueError(f"mix part must be one of {MIX_PARTS}, got {self.part!r}")

    def same(self, other: LatentMix | None) -> bool:
        """Whether both mixes give the same latent."""
        return (
            other is not None
            and (self.part, self.amount, self.source_id) == (other.part, other.amount, other.source_id)
            and np.array_equal(self.ws, other.ws)
        )

    def to_metadata(self) -> dict[str, Any]:
        """JSON-safe description (the ws are left out; callers encode them separately)."""
        return {"source": self.source, "part": self.part, "amount": self.amount}


@dataclasses.dataclass(frozen=True, eq=False)
class GanState:
    """Everything that defines a GAN layer's picture, besides the model weights.

    ``ws`` is the *base* latent [num_ws, w_dim] before truncation and direction edits (for a seed: the mapping
    output with psi = 1; for an inverted image: the inversion result). The rendered latent is
    ``centre.lerp(ws, truncation)``, blended with ``mix`` when it has one, plus ``strength * vector`` of every
    direction (see ``effective_ws``), where the
    centre is the model's mean w, or for a seed a conditional model drew in a class that class's mean w
    (``ganmodels.generate.truncation_centre``).
    ``placement`` is the square of the document the render is scaled into.
    """

    model_key: str
    model_path: str | None
    model_name: str
    ws: np.ndarray  # [num_ws, w_dim] float32, read-only
    placement: Rect
    seed: int | None = None
    truncation: float = 1.0
    strengths: Mapping[str, float] = dataclasses.field(default_factory=dict)
    pti_weights: str | None = None  # key of pivotal-tuning weights (set by the invert flow), None = base model
    noise_mode: str = "const"
    class_index: int | None = None  # the class a conditional model drew the seed in
    anchor: int | None = None  # the model's anchor the sample was drawn around (its truncation centre)
    mix: LatentMix | None = None  # another layer's latent blended in

    def __post_init__(self) -> None:
        object.__setattr__(self, "ws", _frozen_array(self.ws))
        object.__setattr__(self, "strengths", MappingProxyType({k: float(v) for k, v in self.strengths.items()}))
        object.__setattr__(self, "placement", Rect(*self.placement))

    def replace(self, **changes: Any) -> GanState:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def with_strength(self, name: str, value: float) -> GanState:
        """A copy with one direction strength changed (0 removes it)."""
        strengths = dict(self.strengths)
        if value == 0:
            strengths.pop(name, None)
        else:
            strengths[name] = float(value)
        return self.replace(strengths=strengths)

    def same_picture(self, other: GanState) -> bool:
        """True when both states render the same image."""
        return (
            self.model_key == other.model_key
            and self.pti_weights == other.pti_weights
            and self.truncation == other.truncation
            and (self.anchor == other.anchor or self.truncation == 1)
            and self.noise_mode == other.noise_mode
            and dict(self.strengths) == dict(other.strengths)
            and np.array_equal(self.ws, other.ws)
            and (self.mix.same(other.mix) if self.mix is not None else other.mix is None)
        )

    def to_metadata(self) -> dict[str, Any]:
        """JSON-safe description (the ws are left out; callers encode them separately)."""
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "seed": self.seed,
            "class": self.class_index,
            "anchor": self.anchor,
            "truncation": self.truncation,
            "directions": dict(self.strengths),
            "placement": list(self.placement),
            "noise_mode": self.noise_mode,
            "pti_weights": self.pti_weights,
            "mix": self.mix.to_metadata() if self.mix is not None else None,
        }


@torch.no_grad()
def effective_ws(
    ws: np.ndarray,
    *,
    centre: torch.Tensor,
    truncation: float,
    directions: Mapping[str, Direction],
    strengths: Mapping[str, float],
    mix: LatentMix | None = None,
) -> np.ndarray:
    """The latent to render: [num_ws, w_dim] float32: truncated, then mixed, then moved along the directions.

    Truncation uses ``centre.lerp`` exactly as the mapping network does, so a seed's base ws with truncation psi
    and the centre of its class (``truncation_centre(G, class_index)``) renders bit-identically to
    ``seeds_to_ws(G, [seed], truncation_psi=psi)``. Strengths of directions the model does not have are ignored.
    """
    x = torch.from_numpy(np.array(ws, dtype=np.float32))[None]  # [1, num_ws, w_dim]
    if truncation != 1:
        x = centre.detach().float().cpu().lerp(x, truncation)
    if mix is not None and mix.amount > 0:
        if mix.ws.shape != ws.shape:
            raise ValueError(f"the mixed-in latent is {list(mix.ws.shape)}, this layer's {list(ws.shape)}")
        a, b = mix_rows(mix.part, x.shape[1])
        other = torch.from_numpy(np.array(mix.ws[a:b], dtype=np.float32))[None]  # [1, b - a, w_dim]
        x = x.clone()
        x[:, a:b] = x[:, a:b].lerp(other, mix.amount)
    for name, strength in strengths.items():
        d = directions.get(name)
        if d is not None and strength != 0:
            x = d.apply(x, strength)
    return x[0].numpy().astype(np.float32, copy=False)


def state_effective_ws(state: GanState, *, centre: torch.Tensor, directions: Mapping[str, Direction]) -> np.ndarray:
    """``effective_ws`` of a GanState; ``centre`` is the truncation centre of its model and class."""
    return effective_ws(
        state.ws,
        centre=centre,
        truncation=state.truncation,
        directions=directions,
        strengths=state.strengths,
        mix=state.mix,
    )
