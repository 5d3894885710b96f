"""StyleGAN3 generator (alias-free, configs T and R) in pure PyTorch.

Module, parameter and buffer names equal NVIDIA's stylegan3 ``training/networks_stylegan3.py``
(``mapping.fc0.weight``, ``mapping.w_avg``, ``synthesis.input.freqs``, ``synthesis.input.transform``,
``synthesis.L0_36_512.affine.weight``, ``magnitude_ema``, ``up_filter``, ``down_filter``, ...) so an official state
dict loads without renaming. The maths follow NVIDIA's reference paths: Fourier-feature input with a transform
buffer, modulated convolution with pre-normalisation and an input gain from the magnitude EMA, and the
``_filtered_lrelu_ref`` path of filtered leaky ReLU (upfirdn2d up, bias + lrelu + clamp, upfirdn2d down).

Low-pass filters are designed here with numpy (a Kaiser-windowed sinc equal to ``scipy.signal.firwin``, and the
radial jinc filter of config R) so scipy is not needed; pretrained files carry their filters as buffers anyway.
fp32 is the reference path; NVIDIA's fp16 layers (``num_fp16_res``) are recorded but never used on CPU.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganmodels.networks import FullyConnectedLayer, config_from_dict
from ganmodels.ops import bias_act, normalize_2nd_moment, upfirdn2d

# --------------------------------------------------------------------------------------------------------------
# Filters and ops


def _kaiser_beta(atten: float) -> float:
    """Kaiser window beta for a stop-band attenuation in dB (as ``scipy.signal.kaiser_beta``)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _kaiser_atten(numtaps: int, width: float) -> float:
    """Attenuation of a Kaiser FIR filter of ``numtaps`` taps and normalised transition ``width``."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """NVIDIA's ``SynthesisLayer.design_lowpass_filter``: None for one tap, else a separable Kaiser low-pass
    [numtaps] (``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)``) or a radial jinc [numtaps, numtaps]."""
    if numtaps < 1:
        raise ValueError("numtaps must be >= 1")
    if numtaps == 1:
        return None
    beta = _kaiser_beta(_kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        c = cutoff / (fs / 2)
        f = c * np.sinc(c * m) * window
        f = f / f.sum()
        return torch.as_tensor(f, dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    arg = torch.from_numpy(2 * cutoff * (np.pi * r))
    f = torch.special.bessel_j1(arg).numpy() / (np.pi * r)
    f = f * np.outer(window, window)
    f = f / np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: list[int] | tuple[int, ...] = (0, 0, 0, 0),
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, upsample with ``fu``, leaky ReLU, clamp, downsample with ``fd`` (NVIDIA ``_filtered_lrelu_ref``).

    x: [N, C, H, W] -> [N, C, H', W']; padding (x0, x1, y0, y1) applies to the upsampled image.
    """
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=list(padding), gain=up**2)
    x = bias_act(x, None, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def modulated_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    s: torch.Tensor,
    *,
    demodulate: bool = True,
    padding: int = 0,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN3's modulated convolution: x [N, I, H, W], w [O, I, k, k], s [N, I] -> [N, O, H', W'].

    Unlike StyleGAN2, weights and styles are pre-normalised before demodulation, and ``input_gain`` ([] or [I])
    rescales the input channels.
    """
    batch_size = x.shape[0]
    _out_channels, in_channels, kh, kw = w.shape
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.unsqueeze(1).unsqueeze(3).unsqueeze(4)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.unsqueeze(2).unsqueeze(3).unsqueeze(4)
    if input_gain is not None:
        input_gain = input_gain.expand(batch_size, in_channels)  # [N, I]
        w = w * input_gain.unsqueeze(1).unsqueeze(3).unsqueeze(4)
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N*I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N*O, I, k, k]
    x = F.conv2d(x, w.to(x.dtype), padding=padding, groups=batch_size)
    return x.reshape(batch_size, -1, *x.shape[2:])


def _fc(
    in_features: int,
    out_features: int,
    *,
    activation: str = "linear",
    lr_multiplier: float = 1.0,
    weight_init: float = 1.0,
    bias_init: float | list[float] = 0.0,
) -> FullyConnectedLayer:
    """NVIDIA's stylegan3 FullyConnectedLayer (weight_init, per-feature bias_init) on our shared layer class."""
    layer = FullyConnectedLayer(in_features, out_features, activation=activation, lr_multiplier=lr_multiplier)
    with torch.no_grad():
        layer.weight.mul_(weight_init)
        bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        layer.bias.copy_(torch.from_numpy(bias / lr_multiplier))
    return layer


# --------------------------------------------------------------------------------------------------------------
# Networks


class MappingNetwork(nn.Module):
    """z (+ embedded label c) -> w broadcast to [N, num_ws, w_dim], with the tracked average of w.

    Differs from StyleGAN2's mapping in always normalising z, using w_dim-wide layers throughout, and updating
    ``w_avg`` only when asked (``update_emas``) rather than whenever the module is training.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        *,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> ws: [N, num_ws, w_dim]."""
        if truncation_cutoff is None:
            truncation_cutoff = self.num_ws
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisInput(nn.Module):
    """Fourier features of random frequencies, rotated and translated by an affine of w, then mixed linearly.

    ``transform`` is a user-specified inverse transform of the output image (3x3, identity by default).
    """

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = _fc(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w: [N, w_dim] -> [N, C, size, size]."""
        n = w.shape[0]
        transforms = self.transform.unsqueeze(0)  # [1, 3, 3]
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0)  # [1, C]
        t = self.affine(w)  # [N, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse rotation
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])  # inverse translation
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ transforms  # [N, 3, 3]
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grids = F.affine_grid(theta.unsqueeze(0), [1, 1, int(self.size[1]), int(self.size[0])], align_corners=False)
        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        weight = self.weight / np.sqrt(self.channels)
        x = x @ weight.t()
        return x.permute(0, 3, 1, 2)  # [N, C, H, W]


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU between two sampling rates (or the final ToRGB when ``is_torgb``)."""

    def __init__(
        self,
        *,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int,
        out_size: int,
        in_sampling_rate: float,
        out_sampling_rate: float,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        if in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError("the sampling rates of a StyleGAN3 layer must be integer multiples")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer(
            "up_filter",
            design_lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate),
        )
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        if out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError("the sampling rates of a StyleGAN3 layer must be integer multiples")
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer(
            "down_filter",
            design_lowpass_filter(
                self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial
            ),
        )
        pad_total = (self.out_size - 1) * self.down_factor + 1  # output size before downsampling
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor  # input size after upsampling
        pad_total += self.up_taps + self.down_taps - 2  # size reduction by the filters
        pad_lo = (pad_total + self.up_factor) // 2  # symmetric interpretation (paper, appendix C.3)
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """x: [N, I, in, in], w: [N, w_dim] -> [N, O, out, out]. StyleGAN3 has no noise; noise_mode is checked only."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        if update_emas:
            magnitude_cur = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)  # [N, I]
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel**2)))
        x = modulated_conv2d(
            x.to(torch.float32),
            self.weight,
            styles,
            padding=self.conv_kernel - 1,
            demodulate=not self.is_torgb,
            input_gain=input_gain,
        )
        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias.to(x.dtype),
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=float(gain),
            slope=slope,
            clamp=self.conv_clamp,
        )


def synthesis_plan(
    *,
    img_resolution: int,
    img_channels: int,
    channel_base: float,
    channel_max: int,
    num_layers: int,
    num_critical: int,
    first_cutoff: float,
    first_stopband: float,
    last_stopband_rel: float,
    margin_size: int,
) -> dict[str, np.ndarray]:
    """Per-layer cutoffs f_c, stopbands f_t, sampling rates s, half-widths f_h, sizes and channels [num_layers + 1]
    of a StyleGAN3 synthesis network (geometric progression of cutoffs, the last ``num_critical`` critically
    sampled)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(
        cutoffs=cutoffs,
        stopbands=stopbands,
        sampling_rates=sampling_rates,
        half_widths=half_widths,
        sizes=sizes,
        channels=channels,
    )


class SynthesisNetwork(nn.Module):
    """ws [N, num_layers + 2, w_dim] -> image: Fourier input, num_layers alias-free layers, ToRGB, output scale."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ) -> None:
        if num_layers <= num_critical:
            raise ValueError("num_layers must exceed num_critical")
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        plan = synthesis_plan(
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_layers=num_layers,
            num_critical=num_critical,
            first_cutoff=first_cutoff,
            first_stopband=first_stopband,
            last_stopband_rel=last_stopband_rel,
            margin_size=margin_size,
        )
        cutoffs, sampling_rates, half_widths = plan["cutoffs"], plan["sampling_rates"], plan["half_widths"]
        sizes, channels = plan["sizes"], plan["channels"]

        self.input = SynthesisInput(
            w_dim=w_dim,
            channels=int(channels[0]),
            size=int(sizes[0]),
            sampling_rate=sampling_rates[0],
            bandwidth=cutoffs[0],
        )
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=(idx == num_layers),
                is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2**num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=int(sizes[prev]),
                out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]),
                out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev],
                out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev],
                out_half_width=half_widths[idx],
                **layer_kwargs,
            )
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def style_layers(self) -> list[tuple[int, str, SynthesisLayer]]:
        """(ws index, module name, layer) of every style-modulated layer; ws[0] drives the Fourier input."""
        return [(i + 1, f"synthesis.{name}", getattr(self, name)) for i, name in enumerate(self.layer_names)]

    def forward(self, ws: torch.Tensor, **layer_kwargs: Any) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img: [N, img_channels, R, R], float32, about [-1, 1]."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0])
        for name, w in zip(self.layer_names, ws_list[1:]):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


class Generator(nn.Module):
    """StyleGAN3 generator: mapping network z -> w, alias-free synthesis network w -> image."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> img: [N, C, R, R]."""
        ws = self.mapping(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
        )
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


# --------------------------------------------------------------------------------------------------------------
# Config


@dataclasses.dataclass(frozen=True)
class StyleGAN3Config:
    """Everything needed to rebuild a StyleGAN3 Generator; stored as JSON in model files.

    Defaults are NVIDIA's config T; config R is ``conv_kernel=1, use_radial_filters=True`` with doubled
    ``channel_base`` and ``channel_max``.
    """

    generator_kind: ClassVar[str] = "stylegan3"

    img_resolution: int = 256
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999

    def build(self) -> Generator:
        """A freshly initialised Generator with this config."""
        return Generator(
            z_dim=self.z_dim,
            c_dim=self.c_dim,
            w_dim=self.w_dim,
            img_resolution=self.img_resolution,
            img_channels=self.img_channels,
            mapping_kwargs=dict(
                num_layers=self.mapping_layers,
                lr_multiplier=self.mapping_lr_multiplier,
                w_avg_beta=self.w_avg_beta,
            ),
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            num_layers=self.num_layers,
            num_critical=self.num_critical,
            first_cutoff=self.first_cutoff,
            first_stopband=self.first_stopband,
            last_stopband_rel=self.last_stopband_rel,
            margin_size=self.margin_size,
            output_scale=self.output_scale,
            num_fp16_res=self.num_fp16_res,
            conv_kernel=self.conv_kernel,
            filter_size=self.filter_size,
            lrelu_upsampling=self.lrelu_upsampling,
            use_radial_filters=self.use_radial_filters,
            conv_clamp=self.conv_clamp,
            magnitude_ema_beta=self.magnitude_ema_beta,
        )

    def plan(self) -> dict[str, np.ndarray]:
        """The per-layer plan (cutoffs, sampling rates, sizes, channels ...) without building the network."""
        return synthesis_plan(
            img_resolution=self.img_resolution,
            img_channels=self.img_channels,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            num_layers=self.num_layers,
            num_critical=self.num_critical,
            first_cutoff=self.first_cutoff,
            first_stopband=self.first_stopband,
            last_stopband_rel=self.last_stopband_rel,
            margin_size=self.margin_size,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleGAN3Config:
        """Build from a dict, rejecting unknown keys with a clear error."""
        return config_from_dict(cls, d)
