"""Latent directions: a unit vector in W applied with a strength to a range of synthesis layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


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
