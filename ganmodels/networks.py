"""StyleGAN2 generator and discriminator.

Module and parameter names equal NVIDIA's stylegan2-ada-pytorch (``mapping.fc0.weight``, ``mapping.w_avg``,
``synthesis.b4.const``, ``synthesis.b8.conv0.affine.weight``, ``noise_strength``, ``noise_const``, ``torgb``,
``resample_filter`` buffers, ...), so official state dicts load without renaming. Forward maths follow the same
reference: equalised learning rate, weight demodulation, FIR [1,3,3,1] resampling, lrelu gain sqrt(2),
conv_clamp and truncation with cutoff.

fp32 is the reference path. On CPU, run under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and optionally
``.to(memory_format=torch.channels_last)`` for speed. NVIDIA's fp16 blocks (``num_fp16_res``) are honoured on
CUDA only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganmodels.ops import (
    activation_gain,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

DEFAULT_FILTER = (1, 3, 3, 1)


def _autocast_on(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


def _block_dtype(use_fp16: bool, x_device: torch.device, force_fp32: bool) -> torch.dtype:
    return torch.float16 if (use_fp16 and not force_fp32 and x_device.type == "cuda") else torch.float32


# --------------------------------------------------------------------------------------------------------------
# Layers


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate and fused bias + activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(np.float32(bias_init)))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, I] -> [N, O]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_gain(activation)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            if b is not None:
                self.register_buffer("bias", b)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:  # [N, I, H, W] -> [N, O, H', W']
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)


class MappingNetwork(nn.Module):
    """z (+ embedded label c) -> w, with a tracked moving average of w for truncation."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        *,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))
        if c_dim > 0 and z_dim > 0:
            # How often each class is drawn when sampling (the training data's label frequencies).
            self.register_buffer("c_probs", torch.full([c_dim], 1.0 / c_dim))

    def _map(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:  # -> w [N, w_dim] float32
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return x.float()

    @torch.no_grad()
    def class_w_avg(self, *, samples: int = 256) -> torch.Tensor:
        """The mean w of every class of a conditional mapping: [c_dim, w_dim] float32.

        Estimated from ``samples`` fixed z per class (seed 0, so it is the same on every call and machine) and
        cached until the weights change (their in-place version counters are the cache key).
        """
        if self.c_dim == 0:
            raise ValueError("an unconditional mapping has no classes")
        params = list(self.parameters())
        try:
            key = (samples, params[0].device, tuple(p._version for p in params))
        except RuntimeError:  # weights made under torch.inference_mode have no version counter: no cache
            key = None
        cached = getattr(self, "_class_w_avg_cache", None)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        g = torch.Generator().manual_seed(0)
        eye = torch.eye(self.c_dim, device=params[0].device)
        rows = []
        for i in range(self.c_dim):
            z = torch.randn([samples, self.z_dim], generator=g).to(params[0].device) if self.z_dim > 0 else None
            rows.append(self._map(z, eye[i].expand(samples, -1)).mean(dim=0))
        centres = torch.stack(rows)  # [c_dim, w_dim]
        if key is not None:
            self._class_w_avg_cache = (key, centres)
        return centres

    def truncation_centre(self, c: torch.Tensor | None) -> torch.Tensor:
        """What truncation pulls towards: [N, w_dim] for labels c [N, c_dim], else ``w_avg`` [w_dim].

        A conditional mapping truncates towards the mean w of each sample's class (its labels' weighted mean of
        :meth:`class_w_avg`), so that psi < 1 keeps the class instead of blending every class into the one
        average picture; samples without a label (all-zero c) use ``w_avg``.
        """
        if self.c_dim == 0 or c is None:
            return self.w_avg
        weights = c.to(self.w_avg.device, torch.float32)  # [N, c_dim]
        total = weights.sum(dim=1, keepdim=True)
        centres = (weights / total.clamp_min(1e-8)) @ self.class_w_avg()  # [N, w_dim]
        return torch.where(total > 0, centres, self.w_avg[None])

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> ws: [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).

        Truncation (psi < 1) pulls towards ``w_avg``, or for a conditional mapping towards each sample's class
        mean (:meth:`truncation_centre`).
        """
        x = self._map(z, c)
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            centre = self.truncation_centre(c)  # [w_dim] or [N, w_dim]
            if centre.ndim == 2 and self.num_ws is not None:
                centre = centre.unsqueeze(1)  # [N, 1, w_dim]
            if self.num_ws is None or truncation_cutoff is None:
                x = centre.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = centre.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution + per-pixel noise + bias + lrelu."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x: [N, I, r/up, r/up], w: [N, w_dim] -> [N, O, r, r]."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        styles = self.affine(w)  # [N, I]
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, generator=generator)
                * self.noise_strength
            )
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to colour, without demodulation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [N, I]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const | upsampling conv0) + conv1 + toRGB / skip."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        **layer_kwargs: Any,
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown synthesis architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, **layer_kwargs
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=resample_filter
            )

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | None = None,
        **layer_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, C_in, r/2, r/2] features, img: [N, 3, r/2, r/2], ws: [N, num_conv+num_torgb, w_dim]."""
        w_iter = iter(ws.unbind(dim=1))
        dtype = _block_dtype(self.use_fp16, ws.device, force_fp32)
        if fused_modconv is None:
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            if self.conv1.weight.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)
        elif not _autocast_on(x):
            x = x.to(dtype=dtype)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws -> image, one SynthesisBlock per resolution 4, 8, ..., img_resolution."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs: Any,
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, not {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=(res == img_resolution),
                use_fp16=(res >= fp16_resolution),
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def block_ws_ranges(self) -> list[tuple[int, int, int]]:
        """(resolution, first w index, number of ws) of every block; ws of neighbouring blocks overlap by one."""
        out = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out.append((res, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        return out

    def forward(self, ws: torch.Tensor, **block_kwargs: Any) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img: [N, img_channels, R, R], float32, about [-1, 1]."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        for res, start, count in self.block_ws_ranges():
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, start, count), **block_kwargs)
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network z -> w, synthesis network w -> image."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **(synthesis_kwargs or {})
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
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] -> img: [N, C, R, R]."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


def hash_state(h: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Feed tensors (by sorted name, as float32 bytes) into a hashlib object."""
    for name, t in sorted(state.items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())


def weights_digest(module: nn.Module) -> str:
    """sha256 (hex) of a module's weights and buffers: tells whether two networks are the same."""
    h = hashlib.sha256()
    hash_state(h, module.state_dict())
    return h.hexdigest()


def one_hot_c(G: nn.Module, labels: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Class indices [N] -> the generator's conditioning input [N, c_dim] (one-hot)."""
    device = next(G.parameters()).device
    labels = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)  # [N]
    if G.c_dim == 0:
        return torch.zeros([labels.numel(), 0], device=device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= G.c_dim):
        raise ValueError(f"class must be in 0..{G.c_dim - 1}")
    return F.one_hot(labels, G.c_dim).to(torch.float32)


def class_probs(G: nn.Module) -> torch.Tensor:
    """How often each class is drawn when sampling G: [c_dim] (uniform when the model does not say)."""
    probs = getattr(G.mapping, "c_probs", None)
    if probs is None or probs.numel() != G.c_dim or not bool((probs >= 0).all()) or float(probs.sum()) <= 0:
        return torch.full([G.c_dim], 1.0 / max(G.c_dim, 1))
    return probs.detach().float().cpu() / probs.detach().float().cpu().sum()


def random_c(G: nn.Module, n: int, *, generator: torch.Generator) -> torch.Tensor:
    """Random conditioning for n samples: [N, c_dim], classes drawn by ``class_probs`` ([N, 0] if unconditional).

    Draws nothing from ``generator`` for an unconditional G, so unconditional sampling stays unchanged.
    """
    device = next(G.parameters()).device
    if G.c_dim == 0:
        return torch.zeros([n, 0], device=device)
    probs = class_probs(G).to(generator.device)
    labels = torch.multinomial(probs, n, replacement=True, generator=generator)  # [N]
    return one_hot_c(G, labels.to(device))


# --------------------------------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: (fromRGB) + conv0 + downsampling conv1 (+ resnet skip)."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        *,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_layers = 0

        def trainable() -> bool:
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, 1, activation=activation, trainable=trainable(), conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, 3, activation=activation, trainable=trainable(), conv_clamp=conv_clamp
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            activation=activation,
            down=2,
            trainable=trainable(),
            resample_filter=resample_filter,
            conv_clamp=conv_clamp,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                1,
                bias=False,
                down=2,
                trainable=trainable(),
                resample_filter=resample_filter,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [N, C, r, r] features (None for the first block), img: [N, 3, r, r]."""
        dtype = _block_dtype(self.use_fp16, (x if x is not None else img).device, force_fp32)
        autocast = _autocast_on(x if x is not None else img)
        if x is not None and not autocast:
            x = x.to(dtype=dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            if not autocast:
                img = img.to(dtype=dtype)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation over groups of samples as extra feature maps."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C + F, H, W]
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"batch size {n} must be divisible by the minibatch-stddev group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)  # [n, F, c, H, W]
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch stddev, conv, fully connected, output (projected onto the label map if any)."""

    def __init__(
        self,
        in_channels: int,
        *,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0
            else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        """x: [N, C, 4, 4] -> logits [N, 1]."""
        if not _autocast_on(x):
            x = x.to(torch.float32)
        x = x.contiguous()
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(x.dtype))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x.float()


class Discriminator(nn.Module):
    """StyleGAN2 discriminator (resnet by default), conditional through a projection when c_dim > 0."""

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        block_kwargs: dict | None = None,
        mapping_kwargs: dict | None = None,
        epilogue_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in [*self.block_resolutions, 4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0,
                channels[res],
                channels[res // 2],
                resolution=res,
                first_layer_idx=layer_idx,
                use_fp16=(res >= fp16_resolution),
                **(block_kwargs or {}),
                **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {})
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}), **common
        )

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, **block_kwargs: Any) -> torch.Tensor:
        """img: [N, C, R, R] in [-1, 1], c: [N, c_dim] -> logits [N, 1]."""
        return self._run(img, c, None, **block_kwargs)[0]

    def forward_with_features(
        self, img: torch.Tensor, c: torch.Tensor | None, *, feature_res: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [N, 1] and, from the same pass, the activations at ``feature_res`` ([N, C_r, r, r], r < R)."""
        if feature_res not in [res // 2 for res in self.block_resolutions]:
            raise ValueError(f"D has no {feature_res} px activations")
        return self._run(img, c, feature_res)

    def _run(
        self, img: torch.Tensor, c: torch.Tensor | None, feature_res: int | None, **block_kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, feat = None, None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
            if res // 2 == feature_res:
                feat = x
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap), feat

    def features(self, img: torch.Tensor, c: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Intermediate activations of every block, [N, C_r, r/2, r/2] each: a weight-free perceptual space."""
        feats = []
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
            feats.append(x)
        return feats


class ReconDecoder(nn.Module):
    """A self-supervised head for D (FastGAN, Liu et al. 2021): rebuilds the picture D was shown, at ``out_res``,
    from D's ``in_res`` activations, so that D's features must describe the picture's content and layout instead of
    memorising the training set. Nearest-neighbour upsampling + 3x3 conv per octave, channels halved each time."""

    def __init__(self, in_channels: int, *, in_res: int = 8, out_res: int = 32, img_channels: int = 3) -> None:
        super().__init__()
        if out_res < in_res or out_res & (out_res - 1) or in_res & (in_res - 1):
            raise ValueError("in_res and out_res must be powers of two, out_res >= in_res")
        self.in_res, self.out_res = in_res, out_res
        layers, ch = [], in_channels
        for _ in range(int(math.log2(out_res // in_res))):
            out = max(ch // 2, 16)
            layers.append(Conv2dLayer(ch, out, 3, activation="lrelu"))
            ch = out
        self.ups = nn.ModuleList(layers)
        self.torgb = Conv2dLayer(ch, img_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, in_res, in_res] -> [N, 3, out_res, out_res]
        for layer in self.ups:
            x = layer(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.torgb(x)


# --------------------------------------------------------------------------------------------------------------
# Configs


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a Generator; stored as JSON in model files."""

    img_resolution: int = 64
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    channel_base: int = 32768
    channel_max: int = 512
    architecture: str = "skip"
    conv_clamp: float | None = None
    num_fp16_res: int = 0
    use_noise: bool = True
    resample_filter: tuple[int, ...] = DEFAULT_FILTER

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
            synthesis_kwargs=dict(
                channel_base=self.channel_base,
                channel_max=self.channel_max,
                num_fp16_res=self.num_fp16_res,
                architecture=self.architecture,
                conv_clamp=self.conv_clamp,
                use_noise=self.use_noise,
                resample_filter=list(self.resample_filter),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resample_filter"] = list(self.resample_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        """Build from a dict, rejecting unknown keys with a clear error."""
        return config_from_dict(cls, d)


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Everything needed to rebuild a Discriminator."""

    img_resolution: int = 64
    img_channels: int = 3
    c_dim: int = 0
    channel_base: int = 32768
    channel_max: int = 512
    architecture: str = "resnet"
    conv_clamp: float | None = None
    num_fp16_res: int = 0
    mbstd_group_size: int | None = 4
    mbstd_num_channels: int = 1
    spectral_norm: bool = False

    def build(self) -> Discriminator:
        d = Discriminator(
            c_dim=self.c_dim,
            img_resolution=self.img_resolution,
            img_channels=self.img_channels,
            architecture=self.architecture,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            num_fp16_res=self.num_fp16_res,
            conv_clamp=self.conv_clamp,
            epilogue_kwargs=dict(mbstd_group_size=self.mbstd_group_size, mbstd_num_channels=self.mbstd_num_channels),
        )
        if self.spectral_norm:
            apply_spectral_norm(d)
        return d

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscriminatorConfig:
        return config_from_dict(cls, d)


def config_from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Build a frozen config dataclass from a dict, rejecting unknown keys with a clear error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    d = dict(d)
    if "resample_filter" in d:
        d["resample_filter"] = tuple(d["resample_filter"])
    return cls(**d)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every conv / fc weight of ``module`` (an option for D)."""
    for m in module.modules():
        if isinstance(m, (Conv2dLayer, FullyConnectedLayer)) and isinstance(m.weight, nn.Parameter):
            nn.utils.parametrizations.spectral_norm(m, name="weight")
    return module
