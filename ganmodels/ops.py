"""Pure-PyTorch building blocks of StyleGAN2: FIR resampling, bias+activation, modulated convolution.

The maths follow NVIDIA's stylegan2-ada-pytorch reference paths (``_upfirdn2d_ref``, ``_bias_act_ref``,
``conv2d_resample``, ``modulated_conv2d``) so that official weights produce the same images. There are no custom
CUDA kernels: every op is a standard torch op, which also makes them work under CPU bf16 autocast, with
channels_last tensors, and with double backward (needed by R1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]

# Activation name -> (function(x, alpha), default alpha, default gain)
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float, float]] = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    """Default output gain of an activation (sqrt(2) for (l)relu, keeping unit variance)."""
    return ACTIVATIONS[act][2]


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add bias ``b`` along ``dim``, apply the activation, scale by ``gain`` and clamp to ``[-clamp, clamp]``."""
    func, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    if b is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + b.to(x.dtype).reshape(shape)
        if not torch.is_grad_enabled() and act in ("linear", "lrelu"):  # inference: reuse the new tensor
            if act == "lrelu":
                F.leaky_relu_(x, alpha)
            if gain != 1:
                x.mul_(gain)
            if clamp is not None and clamp >= 0:
                x.clamp_(-clamp, clamp)
            return x
    x = func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(
    f: Sequence[float] | torch.Tensor | None,
    *,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Turn a 1-D tap list into the normalised 2-D FIR filter used for resampling.  # [fh, fw]

    Matches ``upfirdn2d.setup_filter`` for filters of fewer than 8 taps (always the case in StyleGAN2).
    """
    if f is None:
        f = [1.0]
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip([0, 1])
    return f * (gain ** (f.ndim / 2))


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """Padding as (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a FIR filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "fast",
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample a batch of images.  # [N, C, H, W]

    Semantics of NVIDIA's ``_upfirdn2d_ref``: padding is relative to the upsampled image and may be negative
    (crop); the filter is flipped unless ``flip_filter`` (true convolution). ``impl="ref"`` forces the literal
    zero-insertion path; "fast" upsamples with a strided transposed convolution (same numbers).
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _parse_padding(padding)

    if impl not in ("fast", "ref"):
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    if up > 1 and down == 1 and impl == "fast":
        return _upfir_transposed(x, f, up=up, pad=(px0, px1, py0, py1), flip_filter=flip_filter, gain=gain)

    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)

    if px0 or px1 or py0 or py1:
        x = F.pad(x, [px0, px1, py0, py1])  # negative values crop

    f = f * (gain ** (f.ndim / 2))
    f = f.to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        weight = f[None, None].expand(c, 1, *f.shape)
        x = F.conv2d(x, weight, groups=c)
    else:
        weight = f[None, None].expand(c, 1, f.shape[0])
        x = F.conv2d(x, weight.unsqueeze(2), groups=c)
        x = F.conv2d(x, weight.unsqueeze(3), groups=c)

    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _upfir_transposed(
    x: torch.Tensor, f: torch.Tensor, *, up: int, pad: tuple[int, int, int, int], flip_filter: bool, gain: float
) -> torch.Tensor:
    """``upfirdn2d`` with ``up > 1, down == 1`` as one strided transposed convolution (polyphase).

    Zero insertion followed by an FIR convolution touches each input pixel once per filter tap; a transposed
    convolution with stride ``up`` computes the same sums without materialising the zeros (3-5x faster on CPU).
    Output index o of the reference equals index ``o + fh - 1 - py0`` of the full transposed result.
    """
    _n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    if f.ndim == 1:
        f = f[:, None] * f[None, :]  # separable filter as its outer product
    f = (f * gain).to(device=x.device, dtype=x.dtype)
    k = f if not flip_filter else f.flip([0, 1])  # the kernel a transposed convolution applies
    fh, fw = f.shape
    weight = k[None, None].expand(c, 1, fh, fw).contiguous()
    z = F.conv_transpose2d(x, weight, stride=up, groups=c)  # [N, C, (h-1)*up+fh, (w-1)*up+fw]
    out_h = h * up + py0 + py1 - fh + 1
    out_w = w * up + px0 + px1 - fw + 1
    sy, sx = fh - 1 - py0, fw - 1 - px0
    return F.pad(z, [-sx, sx + out_w - z.shape[3], -sy, sy + out_h - z.shape[2]])


def upsample2d(x: torch.Tensor, f: torch.Tensor, *, up: int = 2, gain: float = 1.0) -> torch.Tensor:
    """FIR upsampling that keeps the output an exact multiple of the input size."""
    fw, fh = filter_size(f)
    p = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, *, down: int = 2, gain: float = 1.0) -> torch.Tensor:
    """FIR downsampling that keeps the output an exact fraction of the input size."""
    fw, fh = filter_size(f)
    p = [(fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, gain=gain)


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    stride: int = 1,
    padding: Sequence[int] | int = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d / conv_transpose2d; ``flip_weight=False`` means true convolution instead of correlation."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling, padding applied once (NVIDIA ``conv2d_resample``).

    x: [N, C_in, H, W], w: [C_out, C_in // groups, kh, kw] -> [N, C_out, H', W'].
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pad = [px0, px1, py0, py1]

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # Transposed convolution with stride `up`, then the FIR filter.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad, flip_filter=flip_filter)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's demodulation 1 / ||w * s|| per sample and output channel, [O, I, kh, kw] x [N, I] -> [N, O].

    sum_{i,k} (w[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 sum_k w[o,i,k]^2: an [N, O, I] product in float32 instead
    of the [N, O, I, kh, kw] per-sample weights (for 128 channels at batch 32, 4.7 M values per layer, whose
    multiplications were two thirds of a training step's time on the CPU). Elementwise, so autocast leaves it in
    float32 (a bf16 matrix product would lose precision).
    """
    energy = (styles.float().square()[:, None, :] * weight.float().square().sum(dim=[2, 3])[None]).sum(2)  # [N, O]
    return (energy + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Style-modulated convolution with weight demodulation (StyleGAN2 eq. 1-3).

    x: [N, I, H, W], weight: [O, I, kh, kw], styles: [N, I] -> [N, O, H', W'].
    ``fused_modconv`` runs one grouped convolution with per-sample weights; otherwise activations are scaled
    before and after a shared-weight convolution (same maths, faster for training).
    """
    batch_size = x.shape[0]
    _out_channels, in_channels, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:  # pre-normalise to avoid fp16 overflow
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate and fused_modconv:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # [N, O, I, kh, kw]
    elif demodulate:
        dcoefs = demodulation_coefficients(weight, styles)  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    x = x.reshape(1, -1, *x.shape[2:])  # [1, N*I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N*O, I, kh, kw]
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch_size,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def normalize_2nd_moment(x: torch.Tensor, *, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
