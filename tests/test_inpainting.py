"""Inpainting: conventions, exact preservation of known pixels, every method on a tiny case, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganmodels.ganinpainter import new_inpainter_net, train_inpainter
from ganmodels.inpainting import (
    InpaintError,
    available_methods,
    check_inputs,
    create_inpainter,
    feather,
    square_crop_box,
)
from ganmodels.masks import free_form_mask
from tests.conftest import tiny_generator


def _case(h=40, w=48):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx / w, yy / h, 0.5 + 0.2 * np.sin(xx / 3)], axis=2).astype(np.float32)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    image = np.clip(image, 0, 1)
    mask = np.zeros((h, w), np.float32)
    mask[12:24, 18:30] = 1
    mask[24, 18:30] = 0.5  # a soft edge
    return image, mask


def _make(name):
    if name == "gan-inversion":
        G, _ = tiny_generator()
        return create_inpainter(name, G=G, num_steps=10)
    if name == "gan-inpainter":
        G, _ = tiny_generator()
        torch.manual_seed(0)
        return create_inpainter(name, G=G, net=new_inpainter_net(G, channels=8, channel_max=16))
    return create_inpainter(name)


@pytest.mark.parametrize("name", available_methods())
def test_every_method_fills_and_preserves_known_pixels_exactly(name):
    image, mask = _case()
    damaged = image.copy()
    damaged[mask > 0] = [1.0, 0.0, 1.0]  # magenta damage under the mask
    steps = list(_make(name).run(damaged, mask))
    result = steps[-1].result
    assert result is not None and all(s.result is None for s in steps[:-1])
    assert result.shape == image.shape and result.dtype == np.float32
    known = mask == 0
    assert np.array_equal(result[known], damaged[known])  # bit for bit
    assert not np.allclose(result[mask == 1], damaged[mask == 1])  # the magenta was replaced
    assert 0 <= result.min() and result.max() <= 1


def test_classical_fill_is_close_to_a_smooth_original():
    image, mask = _case()
    damaged = image.copy()
    damaged[mask > 0] = 0
    err_damage = np.abs(damaged[mask == 1] - image[mask == 1]).mean()
    for name in ("telea", "ns", "fsr-fast"):
        result = create_inpainter(name)(damaged, mask)
        err = np.abs(result[mask == 1] - image[mask == 1]).mean()
        assert err < 0.35 * err_damage, (name, err, err_damage)


def test_fsr_uses_the_reversed_mask_convention_internally():
    image, mask = _case()
    damaged = image.copy()
    damaged[mask > 0] = 0
    fixed = create_inpainter("fsr-fast")(damaged, mask)
    # had the convention been wrong, the known pixels would be the ones reconstructed and the hole left black
    assert fixed[mask == 1].mean() > 0.2


def test_mask_conventions_and_errors():
    image, mask = _case()
    with pytest.raises(InpaintError, match="mask is 10x10"):
        check_inputs(image, np.zeros((10, 10)))
    with pytest.raises(InpaintError, match=r"\[H, W, 3\]"):
        check_inputs(image[..., 0], mask)
    with pytest.raises(InpaintError, match="unknown inpainting method"):
        create_inpainter("magic")
    img8, m = check_inputs((image * 255).astype(np.uint8), mask[..., None])
    assert img8.dtype == np.float32 and m.shape == mask.shape and img8.max() <= 1


def test_gan_inversion_rejects_empty_mask():
    image, mask = _case()
    G, _ = tiny_generator()
    with pytest.raises(InpaintError, match="empty"):
        list(create_inpainter("gan-inversion", G=G, num_steps=2).run(image, np.zeros_like(mask)))


def test_gan_inversion_fills_from_model_in_domain():
    """A generated image with a hole: the inversion fill is closer to the truth than a flat grey."""
    G, _ = tiny_generator()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)), None, truncation_psi=0.6)
        truth = ((G.synthesis(ws, noise_mode="const")[0].permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy()
    mask = np.zeros((16, 16), np.float32)
    mask[5:10, 5:10] = 1
    damaged = truth.copy()
    damaged[mask > 0] = 0.5
    result = create_inpainter("gan-inversion", G=G, num_steps=120, blend="none")(damaged, mask)
    err_gan = np.abs(result - truth)[mask > 0].mean()
    err_grey = np.abs(damaged - truth)[mask > 0].mean()
    assert err_gan < err_grey


def test_crop_box_and_feather():
    mask = np.zeros((100, 200), np.float32)
    mask[10:20, 150:170] = 1
    top, left, size = square_crop_box(mask, margin=0.5)
    assert size == 40 and 0 <= top and top + size <= 100 and left + size <= 200
    assert top <= 10 and top + size >= 20 and left <= 150 and left + size >= 170
    f = feather(mask, radius=3)
    assert f[mask == 0].max() == 0 and f[15, 160] == 1 and 0 < f[10, 160] < 1


def test_gan_inpainter_training_lowers_hole_loss_and_needs_a_net():
    G, _ = tiny_generator()
    torch.manual_seed(0)
    net = new_inpainter_net(G, channels=16, channel_max=32)
    steps = list(
        train_inpainter(
            net,
            G,
            num_steps=80,
            batch_size=8,
            lr=2e-3,
            generator=torch.Generator().manual_seed(0),
            rng=np.random.default_rng(0),
        )
    )
    first = np.mean([s.losses["hole"] for s in steps[:5]])
    last = np.mean([s.losses["hole"] for s in steps[-5:]])
    assert last < 0.8 * first, (first, last)
    with pytest.raises(InpaintError, match="no trained inpainter"):
        create_inpainter("gan-inpainter", G=G)


def test_free_form_masks_cover_the_requested_area():
    rng = np.random.default_rng(0)
    areas = [free_form_mask(64, 64, rng=rng, area_range=(0.1, 0.4)).mean() for _ in range(30)]
    assert min(areas) >= 0.1 - 1e-6 and max(areas) <= 0.4 + 1e-6
    assert max(areas) - min(areas) > 0.1  # varied


def test_nan_and_inf_inputs_are_sanitised():
    image, mask = _case()
    image[0, 0] = np.nan
    mask[0, 1] = np.inf
    mask[0, 2] = np.nan
    img, m = check_inputs(image, mask)
    assert np.isfinite(img).all() and np.isfinite(m).all() and m[0, 1] == 1 and m[0, 2] == 0
