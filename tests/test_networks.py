"""StyleGAN2 networks: shapes, names, determinism, truncation, W+, gradients, fast paths."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganmodels.networks import DiscriminatorConfig, GeneratorConfig
from tests.conftest import TINY_D, TINY_G, tiny_generator


@pytest.mark.parametrize(
    ("res", "arch", "cbase", "cmax", "c_dim"),
    [(16, "skip", 256, 32, 0), (32, "resnet", 512, 64, 0), (32, "orig", 256, 32, 3), (64, "skip", 512, 32, 0)],
)
def test_generator_and_discriminator_shapes(res, arch, cbase, cmax, c_dim):
    gcfg = GeneratorConfig(
        img_resolution=res,
        z_dim=24,
        w_dim=24,
        c_dim=c_dim,
        mapping_layers=2,
        channel_base=cbase,
        channel_max=cmax,
        architecture=arch,
    )
    G = gcfg.build().eval()
    log2 = res.bit_length() - 1
    assert G.num_ws == 2 * (log2 - 1)  # two convs per block after the first, plus the last toRGB
    z = torch.randn(2, 24)
    c = torch.randn(2, c_dim) if c_dim else None
    ws = G.mapping(z, c)
    assert ws.shape == (2, G.num_ws, 24)
    img = G.synthesis(ws, noise_mode="const")
    assert img.shape == (2, 3, res, res)
    assert img.dtype == torch.float32
    D = DiscriminatorConfig(img_resolution=res, c_dim=c_dim, channel_base=cbase, channel_max=cmax).build()
    assert D(img, c).shape == (2, 1)


def test_state_dict_names_follow_nvidia():
    G, _ = tiny_generator()
    keys = set(G.state_dict())
    for k in [
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.conv1.noise_const",
        "synthesis.b4.conv1.noise_strength",
        "synthesis.b8.conv0.affine.weight",
        "synthesis.b8.conv0.resample_filter",
        "synthesis.b16.torgb.weight",
        "synthesis.b16.torgb.affine.bias",
        "synthesis.b8.resample_filter",
    ]:
        assert k in keys, k
    D = TINY_D.build()
    dkeys = set(D.state_dict())
    for k in [
        "b16.fromrgb.weight",
        "b16.conv0.weight",
        "b16.conv1.weight",
        "b16.skip.weight",
        "b4.fc.weight",
        "b4.out.bias",
        "b4.conv.weight",
        "b8.conv1.resample_filter",
    ]:
        assert k in dkeys, k


def test_resample_filter_is_normalised_outer_product():
    G, _ = tiny_generator()
    f = G.synthesis.b8.resample_filter
    expected = torch.tensor([1.0, 3, 3, 1])
    expected = torch.outer(expected, expected) / 64
    assert torch.equal(f, expected)


def test_random_noise_is_deterministic_with_generator(tiny_G):
    ws = tiny_G.mapping(torch.randn(2, 32), None)
    a = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
    b = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
    c = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_truncation_psi_zero_gives_w_avg_image(tiny_G):
    z = torch.randn(3, 32)
    img = tiny_G(z, None, truncation_psi=0, noise_mode="const")
    w_avg = tiny_G.mapping.w_avg.reshape(1, 1, -1).repeat(1, tiny_G.num_ws, 1)
    ref = tiny_G.synthesis(w_avg, noise_mode="const")
    assert torch.allclose(img, ref.expand_as(img), atol=1e-6)
    # psi=1 does not collapse the samples
    img1 = tiny_G(z, None, truncation_psi=1, noise_mode="const")
    assert (img1[0] - img1[1]).abs().max() > 1e-3


def test_truncation_cutoff_only_moves_first_ws(tiny_G):
    z = torch.randn(2, 32)
    full = tiny_G.mapping(z, None)
    cut = tiny_G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.equal(cut[:, 2:], full[:, 2:])
    assert torch.allclose(cut[:, :2], tiny_G.mapping.w_avg.lerp(full[:, :2], 0.5))


def test_w_plus_with_identical_rows_equals_w(tiny_G):
    z = torch.randn(2, 32)
    w = tiny_G.mapping.fc1(tiny_G.mapping.fc0(z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()))
    ws_from_mapping = tiny_G.mapping(z, None)
    ws_plus = w.unsqueeze(1).repeat(1, tiny_G.num_ws, 1)
    assert torch.allclose(ws_from_mapping, ws_plus, atol=1e-6)
    a = tiny_G.synthesis(ws_plus, noise_mode="const")
    b = tiny_G.synthesis(ws_from_mapping, noise_mode="const")
    assert torch.allclose(a, b, atol=1e-5)


def test_gradients_flow_to_w_plus(tiny_G):
    ws = tiny_G.mapping(torch.randn(1, 32), None).detach().requires_grad_(True)
    img = tiny_G.synthesis(ws, noise_mode="const")
    img.square().mean().backward()
    assert ws.grad is not None
    assert torch.all(ws.grad.abs().sum(dim=2) > 0)  # every layer's w affects the image


def test_fused_and_unfused_modconv_agree(tiny_G):
    ws = tiny_G.mapping(torch.randn(3, 32), None)
    a = tiny_G.synthesis(ws, noise_mode="const", fused_modconv=True)
    b = tiny_G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert torch.allclose(a, b, atol=1e-4)


def test_channels_last_and_bf16_match_fp32(tiny_G):
    ws = tiny_G.mapping(torch.randn(2, 32), None)
    ref = tiny_G.synthesis(ws, noise_mode="const")
    G_cl, _ = tiny_generator()
    G_cl = G_cl.to(memory_format=torch.channels_last)
    out_cl = G_cl.synthesis(ws, noise_mode="const")
    assert torch.allclose(ref, out_cl, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = tiny_G.synthesis(ws, noise_mode="const")
    assert out_bf16.dtype == torch.float32
    rel = (out_bf16 - ref).norm() / ref.norm()
    assert rel < 0.05


def test_discriminator_gradient_for_r1():
    D = TINY_D.build()
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(D(img, None).sum(), img, create_graph=True)
    g.square().sum().backward()  # double backward works
    assert D.b16.conv0.weight.grad is not None


def test_config_round_trip_and_unknown_keys():
    d = TINY_G.to_dict()
    assert GeneratorConfig.from_dict(d) == TINY_G
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({**d, "bogus": 1})
    assert dataclasses.replace(TINY_G, img_resolution=32).build().img_resolution == 32
    with pytest.raises(ValueError, match="power of two"):
        dataclasses.replace(TINY_G, img_resolution=48).build()


def test_spectral_norm_option():
    D = dataclasses.replace(TINY_D, spectral_norm=True).build()
    assert any("parametrizations" in k for k in D.state_dict())
    assert D(torch.randn(2, 3, 16, 16), None).shape == (2, 1)
