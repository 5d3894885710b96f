"""The latent state of a GAN layer (an immutable value) and the maths that turns it into the ws to render."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from editor.raster import Rect
from ganmodels.directions import Direction


def _frozen_array(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out


def sample_name(seed: int, class_index: int | None = None) -> str:
    """The name a new sample's layer gets: "Sample 5", or "Sample 5, class 3" for a conditional model."""
    return f"Sample {seed}" if class_index is None else f"Sample {seed}, class {class_index}"


@dataclasses.dataclass(frozen=True, eq=False)
class GanState:
    """Everything that defines a GAN layer's picture, besides the model weights.

    ``ws`` is the *base* latent [num_ws, w_dim] before truncation and direction edits (for a seed: the mapping
    output with psi = 1; for an inverted image: the inversion result). The rendered latent is
    ``centre.lerp(ws, truncation)`` plus ``strength * vector`` of every direction (see ``effective_ws``), where the
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
            and self.noise_mode == other.noise_mode
            and dict(self.strengths) == dict(other.strengths)
            and np.array_equal(self.ws, other.ws)
        )

    def to_metadata(self) -> dict[str, Any]:
        """JSON-safe description (the ws are left out; callers encode them separately)."""
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "seed": self.seed,
            "class": self.class_index,
            "truncation": self.truncation,
            "directions": dict(self.strengths),
            "placement": list(self.placement),
            "noise_mode": self.noise_mode,
            "pti_weights": self.pti_weights,
        }


@torch.no_grad()
def effective_ws(
    ws: np.ndarray,
    *,
    centre: torch.Tensor,
    truncation: float,
    directions: Mapping[str, Direction],
    strengths: Mapping[str, float],
) -> np.ndarray:
    """The latent to render: [num_ws, w_dim] float32.

    Truncation uses ``centre.lerp`` exactly as the mapping network does, so a seed's base ws with truncation psi
    and the centre of its class (``truncation_centre(G, class_index)``) renders bit-identically to
    ``seeds_to_ws(G, [seed], truncation_psi=psi)``. Strengths of directions the model does not have are ignored.
    """
    x = torch.from_numpy(np.array(ws, dtype=np.float32))[None]  # [1, num_ws, w_dim]
    if truncation != 1:
        x = centre.detach().float().cpu().lerp(x, truncation)
    for name, strength in strengths.items():
        d = directions.get(name)
        if d is not None and strength != 0:
            x = d.apply(x, strength)
    return x[0].numpy().astype(np.float32, copy=False)


def state_effective_ws(state: GanState, *, centre: torch.Tensor, directions: Mapping[str, Direction]) -> np.ndarray:
    """``effective_ws`` of a GanState; ``centre`` is the truncation centre of its model and class."""
    return effective_ws(
        state.ws, centre=centre, truncation=state.truncation, directions=directions, strengths=state.strengths
    )
