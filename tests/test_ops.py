"""Low-level ops: the fast upsampling path equals the literal zero-insertion reference."""

import pytest
import torch

from ganmodels.ops import setup_filter, upfirdn2d, upsample2d


@pytest.mark.parametrize("up", [2, 3, 4])
@pytest.mark.parametrize("flip_filter", [False, True])
@pytest.mark.parametrize("separable", [False, True])
def test_fast_upsampling_matches_zero_insertion_reference(up, flip_filter, separable):
    g = torch.Generator().manual_seed(up * 10 + flip_filter * 2 + separable)
    x = torch.randn([2, 3, 7, 9], generator=g)
    f = torch.rand([5], generator=g) if separable else torch.rand([4, 5], generator=g)  # asymmetric on purpose
    for pad in ([0, 0, 0, 0], [2, 1, 2, 1], [3, -2, -1, 4], [-3, -3, 5, 0], [6, 6, 6, 6]):
        ref = upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=1.7, impl="ref")
        fast = upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=1.7)
        assert fast.shape == ref.shape, pad
        assert torch.allclose(fast, ref, atol=1e-5), (pad, (fast - ref).abs().max())


def test_fast_upsampling_gradients_match_reference():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 4, 8, 8], requires_grad=True)
    w = torch.randn([1, 4, 16, 16])
    (g_fast,) = torch.autograd.grad((upsample2d(x, f) * w).sum(), x)
    ref = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4, impl="ref")
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    assert upsample2d(x, f).shape == (1, 4, 16, 16)
    assert torch.allclose(g_fast, g_ref, atol=1e-5)


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError):
        upfirdn2d(torch.zeros([1, 1, 4, 4]), None, up=2, impl="cuda")


@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh"])
def test_bias_act_inference_path_matches_autograd_path(act):
    from ganmodels.ops import bias_act

    x = torch.randn([2, 5, 3, 3])
    x_before = x.clone()
    b = torch.randn([5])
    with torch.enable_grad():
        ref = bias_act(x, b.requires_grad_(True), act=act, gain=1.3, clamp=0.8)
    with torch.no_grad():
        fast = bias_act(x, b, act=act, gain=1.3, clamp=0.8)
    assert torch.equal(fast, ref.detach())
    assert torch.equal(x, x_before)  # the input itself is never written


def test_demodulation_coefficients_equal_the_per_sample_weight_formula_with_gradients():
    from ganmodels.ops import demodulation_coefficients

    g = torch.Generator().manual_seed(3)
    weight = torch.randn([6, 5, 3, 3], generator=g, requires_grad=True)
    styles = torch.randn([4, 5], generator=g, requires_grad=True)
    probe = torch.randn([4, 6], generator=g)
    # StyleGAN2 eq. 3, literally: 1 / sqrt(sum over i, k of (w[o, i, k] s[n, i])^2)
    w = weight.unsqueeze(0) * styles.reshape(4, 1, 5, 1, 1)  # [N, O, I, kh, kw]
    ref = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    ref_grads = torch.autograd.grad((ref * probe).sum(), [weight, styles])
    ours = demodulation_coefficients(weight, styles)
    grads = torch.autograd.grad((ours * probe).sum(), [weight, styles])
    assert ours.shape == (4, 6) and torch.allclose(ours, ref, rtol=1e-5)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # stays float32 under autocast (a bf16 product drifts)
        assert demodulation_coefficients(weight, styles).dtype == torch.float32
        assert torch.allclose(demodulation_coefficients(weight, styles), ref, rtol=1e-5)
