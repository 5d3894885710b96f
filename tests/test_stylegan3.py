"""StyleGAN3 generator: NVIDIA's names and geometry, filters, EMA buffers, truncation, golden outputs, model files.

The golden numbers were produced by NVIDIA's stylegan3 ``networks_stylegan3.Generator`` built with the same
seed and config on CPU (force_fp32); building ours with the same seed consumes the random generator in the same
order, so the weights agree (up to float rounding of ``randn / 0.01`` vs ``randn * 100``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ganmodels.modelfile import load_model, read_metadata, save_model
from ganmodels.stylegan3 import (
    StyleGAN3Config,
    design_lowpass_filter,
    filtered_lrelu,
    modulated_conv2d,
)

TINY = StyleGAN3Config(
    img_resolution=16, z_dim=16, w_dim=16, channel_base=512, channel_max=32, num_layers=4, margin_size=2
)

# (overrides, sum, abs-sum, img[0, :, 7, 9]) of G(z, truncation_psi=0.8), z = randn(2, 16) from seed 1, with
# magnitude_ema = 0.5 + 0.3 * layer index and w_avg = linspace(-1, 1, 16)
GOLDEN = {
    "T": ({}, 177.8628957685869, 189.46954586544598, [0.11233656108379364, 0.04865730553865433, 0.1639876812696457]),
    "R": (
        {"conv_kernel": 1, "use_radial_filters": True},
        104.97474472644717,
        191.65984547849257,
        [0.28687983751296997, 0.12833891808986664, 0.070644810795784],
    ),
    "T-cond": (
        {"c_dim": 3},
        162.29681500664447,
        204.0565790128312,
        [-0.007957248948514462, -0.07155317813158035, 0.11630061268806458],
    ),
}


def _build(seed: int = 0, **overrides):
    cfg = dataclasses.replace(TINY, **overrides)
    torch.manual_seed(seed)
    return cfg.build().eval(), cfg


@pytest.mark.parametrize("name", list(GOLDEN))
def test_matches_nvidia_golden_outputs(name):
    overrides, total, abs_total, pixel = GOLDEN[name]
    G, cfg = _build(**overrides)
    with torch.no_grad():
        for i, n in enumerate(G.synthesis.layer_names):
            getattr(G.synthesis, n).magnitude_ema.fill_(0.5 + 0.3 * i)
        G.mapping.w_avg.copy_(torch.linspace(-1, 1, 16))
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    c = torch.eye(3)[:2] if cfg.c_dim else torch.zeros(2, 0)
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.8, noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
    assert float(img.double().sum()) == pytest.approx(total, abs=2e-4)
    assert float(img.double().abs().sum()) == pytest.approx(abs_total, abs=2e-4)
    assert img[0, :, 7, 9].tolist() == pytest.approx(pixel, abs=1e-5)


def test_fourier_input_and_transform_golden():
    G, _ = _build()
    w = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    inp = G.synthesis.input
    with torch.no_grad():
        x0 = inp(w)
        a = 0.4
        rotate_translate = [[math.cos(a), -math.sin(a), 0.25], [math.sin(a), math.cos(a), -0.5], [0, 0, 1]]
        inp.transform.copy_(torch.tensor(rotate_translate))
        x1 = inp(w)
    assert x0.shape == (2, 32, 20, 20)
    assert float(x0.double().sum()) == pytest.approx(39.929882464552065, abs=1e-3)
    assert float(x0.double().abs().sum()) == pytest.approx(15063.267469792889, abs=1e-2)
    assert float(x1.double().sum()) == pytest.approx(-250.76778040180216, abs=1e-3)
    assert float(x1.double().abs().sum()) == pytest.approx(15415.129717561009, abs=1e-2)


def test_nvidia_names_and_geometry():
    G, cfg = _build(c_dim=2)
    sd = G.state_dict()
    names = G.synthesis.layer_names
    assert names == ["L0_20_32", "L1_20_32", "L2_20_32", "L3_16_32", "L4_16_3"]
    assert G.num_ws == cfg.num_layers + 2 == 6
    for key in (
        "mapping.embed.weight",
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.input.weight",
        "synthesis.input.affine.weight",
        "synthesis.input.transform",
        "synthesis.input.freqs",
        "synthesis.input.phases",
        "synthesis.L0_20_32.magnitude_ema",
        "synthesis.L0_20_32.up_filter",
        "synthesis.L0_20_32.down_filter",
        "synthesis.L4_16_3.affine.bias",
    ):
        assert key in sd, key
    assert "synthesis.L4_16_3.up_filter" not in sd  # ToRGB: identity filters are None buffers
    assert sd["mapping.fc0.weight"].shape == (16, 32)  # z_dim + embedded label
    assert sd["synthesis.input.freqs"].shape == (32, 2) and torch.equal(sd["synthesis.input.transform"], torch.eye(3))
    assert sd["synthesis.L4_16_3.weight"].shape == (3, 32, 1, 1)
    L0 = G.synthesis.L0_20_32
    assert (L0.up_factor, L0.down_factor, L0.up_taps, L0.down_taps, L0.padding) == (2, 2, 12, 12, [9, 8, 9, 8])
    assert [i for i, _, _ in G.synthesis.style_layers()] == [1, 2, 3, 4, 5]
    assert torch.equal(G.synthesis.input.affine.bias, torch.tensor([1.0, 0, 0, 0]))
    assert torch.equal(G.synthesis.input.affine.weight, torch.zeros(4, 16))
    R, _ = _build(conv_kernel=1, use_radial_filters=True)
    radial = [getattr(R.synthesis, n).down_filter.ndim for n in R.synthesis.layer_names[:-1]]
    assert radial == [2, 2, 1, 1]  # radial except for the critically sampled layers


def test_lowpass_filters():
    assert design_lowpass_filter(1, 2.0, 1.0, 16) is None
    f = design_lowpass_filter(12, 2.0, 3.2, 16)
    assert f.shape == (12,) and float(f.sum()) == pytest.approx(1, abs=1e-6) and torch.equal(f, f.flip(0))
    r = design_lowpass_filter(12, 2.0, 3.2, 16, radial=True)
    assert r.shape == (12, 12) and float(r.sum()) == pytest.approx(1, abs=1e-6) and torch.allclose(r, r.T)
    # scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs), which NVIDIA uses (scipy is not a dependency here)
    firwin = {
        (12, 2.0, 3.2, 16): [
            -0.008186284617069193,
            -0.008941650824924097,
            0.01859150216042258,
            0.08614397596216829,
            0.1744254789587862,
            0.23796697836061623,
        ],
        (6, 1.5, 2.0, 8): [0.01408068248965104, 0.16369162836363407, 0.3222276891467149],
    }
    for (n, c, w, fs), half in firwin.items():
        ref = np.array(half + half[::-1])
        assert np.abs(design_lowpass_filter(n, c, w, fs).numpy() - ref).max() < 1e-7


def test_filtered_lrelu_reference_semantics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    b = torch.randn(3, generator=g)
    # identity filters: bias, leaky ReLU, gain and clamp only
    y = filtered_lrelu(x, None, None, b, gain=math.sqrt(2), slope=0.2, clamp=0.5)
    expected = (torch.nn.functional.leaky_relu(x + b[None, :, None, None], 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    assert torch.allclose(y, expected, atol=1e-6)
    # 2x up then 2x down with a 12-tap low-pass and NVIDIA's padding keeps the size; linear mode is a low-pass
    f = design_lowpass_filter(12, 2.0, 3.2, 16)
    y = filtered_lrelu(x, f, f, None, up=2, down=2, padding=[11, 10, 11, 10], gain=1, slope=1)
    assert y.shape == (2, 3, 8, 8)
    ones = torch.ones(1, 1, 40, 40)
    const = filtered_lrelu(ones, f, f, None, up=2, down=2, padding=[11, 10, 11, 10], gain=1, slope=1)
    assert const.shape == (1, 1, 40, 40)
    assert torch.allclose(const[..., 8:-8, 8:-8], torch.ones(1, 1, 24, 24), atol=1e-5)


def test_modulated_conv_prenormalisation_and_input_gain():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, 6, generator=g)
    w = torch.randn(5, 4, 3, 3, generator=g)
    s = torch.rand(2, 4, generator=g) + 0.5
    y = modulated_conv2d(x, w, s, padding=1)
    # demodulation makes the result invariant to the scale of the weights and the styles
    assert torch.allclose(y, modulated_conv2d(x, w * 7, s * 0.1, padding=1), atol=1e-5)
    # an input gain scales the input channels
    gain = torch.tensor(0.25)
    y_gain = modulated_conv2d(x, w, s, padding=1, input_gain=gain, demodulate=False)
    assert torch.allclose(y_gain, modulated_conv2d(x * 0.25, w, s, padding=1, demodulate=False), atol=1e-5)


def test_emas_update_only_when_asked():
    G, _ = _build()
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    layer = G.synthesis.L1_20_32
    before_w, before_m = G.mapping.w_avg.clone(), layer.magnitude_ema.clone()
    G.train()
    with torch.no_grad():
        G(z, None)
    assert torch.equal(G.mapping.w_avg, before_w) and torch.equal(layer.magnitude_ema, before_m)
    with torch.no_grad():
        ws = G.mapping(z, None, update_emas=True)
        G.synthesis(ws, update_emas=True)
    w = G.mapping(z, None)[:, 0]  # same z: the EMA moved from 0 toward the batch mean by (1 - beta)
    assert torch.allclose(G.mapping.w_avg, w.mean(0) * (1 - 0.998), atol=1e-6)
    assert float(layer.magnitude_ema) != 1.0


def test_truncation_and_cutoff():
    G, _ = _build()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16, generator=torch.Generator().manual_seed(3)))
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    ws = G.mapping(z, None)
    assert ws.shape == (3, 6, 16)
    assert torch.allclose(G.mapping(z, None, truncation_psi=0), G.mapping.w_avg.expand(3, 6, 16))
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.lerp(ws[:, :2], 0.5)) and torch.equal(cut[:, 2:], ws[:, 2:])


def test_bad_inputs():
    G, _ = _build()
    with pytest.raises(ValueError, match=r"\[N, 6, 16\]"):
        G.synthesis(torch.zeros(1, 5, 16))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(torch.zeros(1, 6, 16), noise_mode="bogus")
    with pytest.raises(ValueError, match="unknown StyleGAN3Config keys"):
        StyleGAN3Config.from_dict({**TINY.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="num_critical"):
        dataclasses.replace(TINY, num_layers=2).build()


def test_model_file_round_trip(tmp_path):
    G, cfg = _build(conv_kernel=1, use_radial_filters=True, conv_clamp=None)
    with torch.no_grad():
        G.synthesis.L2_20_32.magnitude_ema.fill_(0.7)
        G.synthesis.input.transform[0, 2] = 0.3
    path = save_model(tmp_path / "sg3.safetensors", G, config=cfg, card={"name": "r"})
    assert read_metadata(path)["generator_kind"] == "stylegan3"
    model = load_model(path)
    assert model.kind == "stylegan3" and model.config == cfg
    for k, v in G.state_dict().items():
        assert torch.equal(model.G.state_dict()[k], v), k
    ws = G.mapping(torch.randn(2, 16), None)
    with torch.no_grad():
        assert torch.equal(model.G.synthesis(ws), G.synthesis(ws))
    half = load_model(save_model(tmp_path / "h.safetensors", G, config=cfg, dtype=torch.float16))
    with torch.no_grad():
        assert (half.G.synthesis(ws) - G.synthesis(ws)).abs().max() < 0.05
