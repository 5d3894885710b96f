"""Helpers shared by the checkpoint importers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ganmodels.modelfile import GanModel, ModelFileError, state_dict_problems

Component = tuple[str, dict[str, Any], dict[str, torch.Tensor]]


@dataclasses.dataclass
class Imported:
    """What an importer found: the model, extra networks worth keeping on conversion, and notes for the user."""

    model: GanModel
    components: dict[str, Component] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)


def load_weights(module: nn.Module, sd: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``sd`` into ``module`` requiring exactly its keys and shapes; errors name the first offenders."""
    expected = module.state_dict()
    problems = state_dict_problems({k: v.shape for k, v in expected.items()}, sd)
    if problems:
        raise ModelFileError(f"{source}: the weights do not fit the inferred architecture: {'; '.join(problems)}")
    module.load_state_dict({k: v.detach().to(expected[k].dtype) for k, v in sd.items()})


def fit_channels(
    found: Mapping[Any, int],
    formula: Any,
    candidates: Iterable[tuple[float | None, float | None]],
    *,
    source: str,
) -> tuple[int, int]:
    """The first (channel_base, channel_max) among ``candidates`` for which ``formula(base, max)`` reproduces the
    channel counts ``found`` (key -> channels); a clear error when none does."""
    tried = []
    for base, cmax in candidates:
        if base is None or cmax is None:
            continue
        base, cmax = int(base), int(cmax)
        if (base, cmax) in tried:
            continue
        tried.append((base, cmax))
        predicted = formula(base, cmax)
        if all(int(predicted[k]) == int(v) for k, v in found.items()):
            return base, cmax
    raise ModelFileError(
        f"{source}: the channel counts {dict(found)} follow no channel_base / channel_max rule this app supports"
    )


@torch.no_grad()
def estimate_w_avg(G: nn.Module, *, num_samples: int = 10000, seed: int = 0) -> torch.Tensor:
    """Mean of w over ``num_samples`` seeded random z (for checkpoints that do not store it): [w_dim]."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn([num_samples, G.z_dim], generator=g)
    c = torch.zeros([num_samples, G.c_dim])
    ws = [G.mapping(z[i : i + 1000], c[i : i + 1000])[:, 0] for i in range(0, num_samples, 1000)]
    return torch.cat(ws).mean(0)


def finish(G: nn.Module, device: torch.device | str) -> nn.Module:
    """Eval mode, frozen, fp32, on ``device``."""
    return G.eval().requires_grad_(False).to(device)
