"""Inversion and pivotal tuning on a tiny random model."""

from __future__ import annotations

import numpy as np
import torch

from ganmodels.inversion import (
    image_to_tensor,
    invert,
    mask_to_known,
    noise_regularisation,
    pivotal_tuning,
    render,
)
from ganmodels.losses import ms_ssim, psnr, ssim
from tests.conftest import tiny_generator


def _target(G, seed=3):
    with torch.no_grad():
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed))
        ws = G.mapping(z, None, truncation_psi=0.7)
        return ws, G.synthesis(ws, noise_mode="const")


def test_inversion_recovers_a_generated_image():
    G, _ = tiny_generator()
    _, target = _target(G)
    steps = list(
        invert(G, target, space="w+", num_steps=150, optimize_noise=False, generator=torch.Generator().manual_seed(0))
    )
    assert steps[-1].psnr > 25, steps[-1].psnr
    assert steps[-1].psnr > steps[4].psnr + 5
    assert steps[-1].ws.shape == (1, G.num_ws, G.w_dim)
    assert steps[-1].preview.shape == (16, 16, 3) and steps[-1].preview.dtype == np.float32
    img = render(G, steps[-1].ws)
    assert abs(float(psnr(img, target)) - steps[-1].psnr) < 1e-3


def test_w_space_gives_identical_rows():
    G, _ = tiny_generator()
    _, target = _target(G)
    last = list(invert(G, target, space="w", num_steps=20, generator=torch.Generator().manual_seed(0)))[-1]
    assert torch.equal(last.ws[:, :1].expand_as(last.ws), last.ws)
    assert last.noise is not None and all(torch.isfinite(v).all() for v in last.noise.values())


def test_masked_inversion_ignores_masked_pixels():
    G, _ = tiny_generator()
    _, target = _target(G)
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1  # fill region
    other = target.clone()
    other[:, :, 4:12, 4:12] = torch.rand(1, 3, 8, 8) * 2 - 1  # garbage where the mask is
    a = list(invert(G, target, mask=mask, num_steps=15, ms_ssim_weight=0.5, generator=torch.Generator().manual_seed(1)))
    b = list(invert(G, other, mask=mask, num_steps=15, ms_ssim_weight=0.5, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(a[-1].ws, b[-1].ws)
    c = list(invert(G, other, num_steps=15, ms_ssim_weight=0.5, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a[-1].ws, c[-1].ws)  # without the mask the garbage matters


def test_cancel_stops_within_one_step():
    G, _ = tiny_generator()
    _, target = _target(G)
    calls = []
    handle = G.synthesis.register_forward_hook(lambda *a: calls.append(1))
    gen = invert(G, target, num_steps=100, preview_every=0, generator=torch.Generator().manual_seed(0))
    for step in gen:
        if step.step == 3:
            break
    gen.close()
    handle.remove()
    assert step.step == 3
    assert len(calls) <= 4  # the steps taken (plus at most one preview render), nothing after the cancel


def test_pivotal_tuning_improves_fidelity_and_keeps_base_model():
    G, _ = tiny_generator()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    ws, _ = _target(G, seed=4)
    real = torch.rand(1, 3, 16, 16) * 2 - 1  # not in the model's range: inversion alone cannot fit it
    steps = list(pivotal_tuning(G, ws, real, num_steps=60, lr=3e-3, generator=torch.Generator().manual_seed(0)))
    assert steps[-1].psnr > steps[0].psnr + 2
    assert steps[-1].weights is not None and steps[0].weights is None
    for k, v in G.state_dict().items():
        assert torch.equal(v, before[k]), k
    tuned = render(G, ws, weights=steps[-1].weights)
    assert float(psnr(tuned, real)) > float(psnr(render(G, ws), real)) + 2


def test_image_and_mask_conversion():
    img = np.zeros((32, 32, 3), np.float32)
    img[:, :16] = 1.0
    t = image_to_tensor(img, resolution=16)
    assert t.shape == (1, 3, 16, 16)
    assert torch.allclose(t[0, :, :, :8], torch.ones(3, 16, 8)) and torch.allclose(
        t[0, :, :, 8:], -torch.ones(3, 16, 8)
    )
    m = np.zeros((32, 32), np.float32)
    m[:16] = 1
    known = mask_to_known(m, resolution=16)
    assert known.shape == (1, 1, 16, 16) and known[0, 0, :8].sum() == 0 and known[0, 0, 8:].eq(1).all()


def test_ssim_family_and_noise_reg():
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert torch.allclose(ms_ssim(a, a), torch.ones(2), atol=1e-5)
    b = a + 0.3 * torch.randn_like(a)
    assert (ssim(a, b) < 0.9).all() and (ms_ssim(a, b) < ms_ssim(a, a)).all()
    assert (psnr(a, a + 0.02) > 30).all()
    smooth = {"x": torch.ones(16, 16)}
    white = {"x": torch.randn(16, 16, generator=torch.Generator().manual_seed(0))}
    assert noise_regularisation(smooth) > 10 * noise_regularisation(white)
