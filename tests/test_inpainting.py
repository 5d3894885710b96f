"""Inpainting: conventions, exact preservation of known pixels, every method on a tiny case, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganmodels.ganinpainter import (
    GanInpainter,
    InpainterTrainer,
    InpainterTrainOptions,
    InpaintNetConfig,
    fill,
    holdout_indices,
    new_inpainter_net,
)
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
        torch.manual_seed(0)
        return create_inpainter(name, net=new_inpainter_net(channels=8, dilations=(1, 2)))
    return create_inpainter(name)


def test_every_method_has_a_name_and_advice_for_people():
    from ganmodels.inpainting import METHOD_LABELS, METHOD_TIPS, method_label

    assert set(METHOD_LABELS) == set(METHOD_TIPS) == set(available_methods())
    assert len(set(METHOD_LABELS.values())) == len(METHOD_LABELS)  # no two alike in a menu
    assert method_label("telea") == "Telea Fast Marching" and method_label("new-one") == "new-one"


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
    soft = mask == 0.5  # a soft brush edge is filled too, blended half and half with what was there
    assert np.abs(result[soft] - damaged[soft]).max() > 0.05
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
    # A mask over everything leaves nothing to fill from: every method refuses it (one known pixel is enough).
    full = np.ones_like(mask)
    for name in ("telea", "ns", "fsr-fast"):
        with pytest.raises(InpaintError, match="covers the whole picture"):
            create_inpainter(name)(image, full)
    full[0, 0] = 0.01  # a touch of the brush makes a pixel part of the fill
    with pytest.raises(InpaintError, match="covers the whole picture"):
        create_inpainter("telea")(image, full)
    full[0, 0] = 0.0
    assert create_inpainter("telea")(image, full).shape == image.shape


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


def test_gan_inversion_with_pivotal_tuning_continues_the_picture():
    """A picture the model cannot draw (a colour gradient): tuning G on the known pixels brings the fill closer to the
    truth than the inversion alone, and progress runs through both stages in order."""
    torch.set_num_threads(1)
    G, _ = tiny_generator()
    image, mask = _case(32, 32)
    mask[:] = 0
    mask[10:20, 10:20] = 1
    damaged = image.copy()
    damaged[mask > 0] = 0.5
    errors = []
    for tune in (0, 60):
        steps = list(
            create_inpainter("gan-inversion", G=G, num_steps=30, tune_steps=tune, blend="none").run(damaged, mask)
        )
        assert steps[-1].num_steps == 30 + tune + 1 and steps[-1].step == steps[-1].num_steps
        assert [s.step for s in steps] == sorted({s.step for s in steps})  # strictly increasing
        assert sum(s.message.startswith("tuning") for s in steps) == tune
        result = steps[-1].result
        assert np.array_equal(result[mask == 0], damaged[mask == 0])
        errors.append(float(np.abs(result - image)[mask > 0].mean()))
    assert errors[1] < 0.95 * errors[0], errors
    with pytest.raises(ValueError):
        create_inpainter("gan-inversion", G=G, tune_steps=-1)


def test_poisson_blend_takes_its_boundary_from_known_pixels_only():
    """With the true picture as the fill, Poisson blending gives it back, even where the mask reaches the picture's
    edge and the damage under the mask is far from the truth; a fill that is off by a constant is corrected."""
    from ganmodels.inpainting import poisson_blend

    image, _ = _case(40, 48)
    mask = np.zeros((40, 48), np.float32)
    mask[0:15, 10:30] = 1  # touches the top edge
    mask[20:30, 35:48] = 1  # touches the right edge
    damaged = image.copy()
    damaged[mask > 0] = [1.0, 0.0, 1.0]
    out = poisson_blend(damaged, image, mask)
    assert np.array_equal(out[mask == 0], damaged[mask == 0])
    assert np.abs(out - image)[mask > 0].max() <= 2 / 255  # 8-bit rounding
    shifted = poisson_blend(damaged, np.clip(image + 0.2, 0, 1), mask)
    assert np.abs(shifted - image)[mask > 0].mean() < 0.25 * np.abs(np.clip(image + 0.2, 0, 1) - image)[mask > 0].mean()


def test_poisson_blend_solves_the_membrane_equation_exactly():
    """Against a direct dense solve of the discrete Laplace equation (zero flux across the picture's edge), on a mask
    large enough for the half-resolution start to be used."""
    from ganmodels.inpainting import poisson_blend

    rng = np.random.default_rng(3)
    h, w = 30, 27
    image = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    filled = rng.uniform(0.3, 0.7, (h, w, 3)).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[0:24, 3:22] = 1  # touches the top edge
    mask[10:14, 22:27] = 1  # and the right edge
    assert mask.sum() > 256
    unknown = np.argwhere(mask > 0)
    index = {tuple(p): i for i, p in enumerate(unknown)}
    A = np.zeros((len(unknown), len(unknown)))
    b = np.zeros((len(unknown), 3))
    for i, (y, x) in enumerate(unknown):
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            yy, xx = y + dy, x + dx
            if not (0 <= yy < h and 0 <= xx < w):
                continue  # the picture's edge: no flux
            A[i, i] += 1
            if (yy, xx) in index:
                A[i, index[(yy, xx)]] -= 1
            else:
                b[i] += image[yy, xx] - filled[yy, xx]
    c = np.linalg.solve(A, b)
    expected = image.copy()
    expected[mask > 0] = np.clip(filled[mask > 0] + c, 0, 1)
    out = poisson_blend(image, filled, mask, tol=1e-10)
    assert np.abs(out - expected).max() < 1e-5


def test_crop_box_and_feather():
    mask = np.zeros((100, 200), np.float32)
    mask[10:20, 150:170] = 1
    top, left, size = square_crop_box(mask, margin=0.5)
    assert size == 40 and 0 <= top and top + size <= 100 and left + size <= 200
    assert top <= 10 and top + size >= 20 and left <= 150 and left + size >= 170
    f = feather(mask, radius=3)
    assert f[mask == 0].max() == 0 and f[15, 160] == 1 and 0 < f[10, 160] < 1


def _toy_images(n=24, res=32, seed=0):
    """Coloured discs on white: uint8 [n, res, res, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res]
    out = np.full((n, res, res, 3), 255, np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.35, 0.65, 2) * res
        r = rng.uniform(0.2, 0.35) * res
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        out[i][inside] = rng.integers(0, 200, 3)
    return out


def _small_options(**kw):
    base = dict(batch_size=4, crop=32, lr=2e-3, d_lr=2e-3, holdout_every=6, seed=0)
    base.update(kw)
    return InpainterTrainOptions(**base)


def test_gan_inpainter_training_lowers_hole_loss_and_needs_a_net():
    trainer = InpainterTrainer(
        _toy_images(), options=_small_options(), net_config=InpaintNetConfig(channels=8, dilations=(1, 2))
    )
    steps = list(trainer.run(60))
    assert [s.step for s in steps] == list(range(1, 61)) and trainer.step == 60
    first = np.mean([s.losses["hole"] for s in steps[:5]])
    last = np.mean([s.losses["hole"] for s in steps[-5:]])
    assert last < 0.7 * first, (first, last)
    assert set(steps[-1].losses) == {"hole", "valid", "adv", "D"}
    with pytest.raises(InpaintError, match="no trained inpainter"):
        create_inpainter("gan-inpainter", G=None)


def test_training_continues_from_a_stored_frozen_network():
    from ganmodels.ganinpainter import inpainter_component, inpainter_from_state

    _, cfg, sd = inpainter_component(new_inpainter_net(channels=4, dilations=(1,)))
    stored = inpainter_from_state(cfg, sd)  # as loaded from a model file: eval, requires_grad off
    before = {k: v.clone() for k, v in stored.state_dict().items()}
    trainer = InpainterTrainer(_toy_images(), options=_small_options(), net=stored)
    list(trainer.run(2))
    assert any(not torch.equal(before[k], v) for k, v in trainer.net.state_dict().items())


def test_inpainter_training_never_sees_held_out_images():
    images = _toy_images(n=13)
    held = holdout_indices(13, 6)
    assert held.tolist() == [0, 6, 12]
    trainer = InpainterTrainer(
        images, options=_small_options(), net_config=InpaintNetConfig(channels=4, dilations=(1,))
    )
    assert sorted(set(trainer.train_indices.tolist()) | set(held.tolist())) == list(range(13))
    assert not set(trainer.train_indices.tolist()) & set(held.tolist())
    assert holdout_indices(5, 0).size == 0


def test_inpainter_resume_reproduces_the_same_next_steps(tmp_path):
    images = _toy_images()
    cfg = InpaintNetConfig(channels=4, dilations=(1, 2))
    a = InpainterTrainer(images, options=_small_options(), net_config=cfg)
    list(a.run(3))
    snap = a.save(tmp_path / "snap.safetensors")
    list(a.run(5))
    b = InpainterTrainer.load(snap, images)
    assert b.step == 3 and b.options == a.options
    list(b.run(5))
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(va, vb), k
    for va, vb in zip(a.D.state_dict().values(), b.D.state_dict().values()):
        assert torch.equal(va, vb)
    with pytest.raises(ValueError, match="not an inpainter training snapshot"):
        from ganmodels.stio import save_safetensors

        InpainterTrainer.load(save_safetensors(tmp_path / "x.safetensors", {"a": torch.zeros(1)}, {}), images)


def test_inpainter_fill_ignores_hole_content_and_takes_any_size():
    torch.manual_seed(0)
    net = new_inpainter_net(channels=4, dilations=(1, 2)).eval()
    img = torch.rand(1, 3, 37, 45) * 2 - 1  # not a multiple of 8
    mask = torch.zeros(1, 1, 37, 45)
    mask[..., 10:20, 5:30] = 1
    other = img.clone()
    other[..., 10:20, 5:30] = 0.7  # different content under the hole
    a, b = fill(net, img, mask), fill(net, other, mask)
    assert a.shape == (1, 3, 37, 45)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(img, mask)


def test_gan_inpainter_shrinks_big_crops_and_keeps_known_pixels():
    torch.manual_seed(0)
    inp = GanInpainter(new_inpainter_net(channels=4, dilations=(1,)), max_size=64)
    rng = np.random.default_rng(0)
    image = rng.random((150, 210, 3)).astype(np.float32)
    mask = np.zeros((150, 210), np.float32)
    mask[20:120, 30:190] = 1  # crop of about 150 x 210 > max_size: filled at 64 px and scaled back
    result = inp(image, mask)
    assert result.shape == image.shape
    assert np.array_equal(result[mask == 0], image[mask == 0])
    assert not np.allclose(result[mask == 1], image[mask == 1])
    same = inp(image, np.zeros_like(mask))
    assert np.array_equal(same, image)


def test_free_form_masks_cover_the_requested_area():
    rng = np.random.default_rng(0)
    areas = [free_form_mask(64, 64, rng=rng, area_range=(0.1, 0.4)).mean() for _ in range(30)]
    assert min(areas) >= 0.1 - 1e-6 and max(areas) <= 0.4 + 1e-6
    # strokes as wide as the picture (scale 4 on 16 px) cover it all; the mask is shrunk from the border
    big = [free_form_mask(16, 16, rng=rng, area_range=(0.1, 0.5), scale=4.0).mean() for _ in range(10)]
    assert max(big) <= 0.5 + 1e-6
    assert max(areas) - min(areas) > 0.1  # varied


def test_nan_and_inf_inputs_are_sanitised():
    image, mask = _case()
    image[0, 0] = np.nan
    mask[0, 1] = np.inf
    mask[0, 2] = np.nan
    img, m = check_inputs(image, mask)
    assert np.isfinite(img).all() and np.isfinite(m).all() and m[0, 1] == 1 and m[0, 2] == 0
