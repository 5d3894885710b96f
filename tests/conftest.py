"""Shared fixtures: offscreen Qt, tiny random-weight models."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import torch

from ganmodels.networks import DiscriminatorConfig, GeneratorConfig

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_G = GeneratorConfig(img_resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
TINY_D = DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32)


def tiny_generator(seed: int = 0, **overrides):
    """A small random-weight generator in eval mode, with non-zero noise strengths and w_avg."""
    import dataclasses

    cfg = dataclasses.replace(TINY_G, **overrides)
    torch.manual_seed(seed)
    G = cfg.build()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(torch.rand([], generator=g) * 0.2 + 0.05)
        G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=g) * 0.5)
    return G.eval(), cfg


@pytest.fixture
def tiny_G():
    G, _cfg = tiny_generator()
    return G


@pytest.fixture
def tiny_model_file(tmp_path):
    """A native model file holding a tiny generator and one direction."""
    from ganmodels.directions import Direction
    from ganmodels.modelfile import save_model

    G, cfg = tiny_generator()
    v = torch.zeros(cfg.w_dim)
    v[0] = 1.0
    path = tmp_path / "tiny.safetensors"
    save_model(
        path,
        G,
        config=cfg,
        card={"name": "tiny", "licence": "MIT", "training_data": "none"},
        directions={"first": Direction("first", v, (0, 3), method="manual", description="axis 0")},
    )
    return path
