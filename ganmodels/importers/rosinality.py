"""rosinality stylegan2-pytorch state dicts (and e4e / pSp ``decoder.*``) <-> our StyleGAN2 names.

rosinality's Generator computes the same function as NVIDIA's with other names and shapes:

====================================  ======================================================
rosinality                            ours (NVIDIA)
====================================  ======================================================
``style.{i+1}.weight/bias``           ``mapping.fc{i}.weight/bias`` (PixelNorm = normalise z)
``input.input`` [1, C, 4, 4]          ``synthesis.b4.const`` [C, 4, 4]
``conv1.*`` / ``to_rgb1.*``           ``synthesis.b4.conv1.*`` / ``synthesis.b4.torgb.*``
``convs.{2k}``, ``convs.{2k+1}``      ``synthesis.b{8·2^k}.conv0``, ``.conv1``
``to_rgbs.{k}``                       ``synthesis.b{8·2^k}.torgb``
``*.conv.weight`` [1, O, I, k, k]     ``*.weight`` [O, I, k, k]
``*.conv.modulation.weight/bias``     ``*.affine.weight/bias``
``*.noise.weight`` [1]                ``*.noise_strength`` []
``*.activate.bias`` / ToRGB ``bias``  ``*.bias`` [O]
``noises.noise_{j}`` [1, 1, r, r]     ``noise_const`` [r, r] of the j-th conv layer
``latent_avg`` (checkpoint key)       ``mapping.w_avg``
====================================  ======================================================

The mapping's learning-rate multiplier (0.01) is not stored in rosinality files and is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ganmodels.importers.common import fit_channels
from ganmodels.modelfile import ModelFileError
from ganmodels.networks import Generator, GeneratorConfig
from ganmodels.ops import setup_filter

LR_MLP = 0.01


def is_rosinality(sd: Mapping[str, torch.Tensor], prefix: str = "") -> bool:
    return f"{prefix}style.1.weight" in sd and f"{prefix}input.input" in sd and f"{prefix}conv1.conv.weight" in sd


def _conv_names(res: int, idx: int) -> tuple[str, str]:
    """(ours, theirs) module prefixes of the idx-th (0 or 1) conv of the block at ``res`` (res >= 8)."""
    k = int(math.log2(res)) - 3
    return f"synthesis.b{res}.conv{idx}", f"convs.{2 * k + idx}"


def config_from_state_dict(sd: Mapping[str, torch.Tensor], *, prefix: str = "", source: str) -> GeneratorConfig:
    """GeneratorConfig of a rosinality Generator state dict (sizes from shapes; channel_multiplier fitted)."""
    n_mlp = 0
    while f"{prefix}style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    style_dim = int(sd[f"{prefix}style.1.weight"].shape[1])
    n_convs = 0
    while f"{prefix}convs.{n_convs}.conv.weight" in sd:
        n_convs += 1
    if n_convs % 2:
        raise ModelFileError(f"{source}: odd number of convs ({n_convs}) in a rosinality generator")
    res = 4 * 2 ** (n_convs // 2)
    block_res = [2**i for i in range(2, int(math.log2(res)) + 1)]
    channels = {4: int(sd[f"{prefix}input.input"].shape[1])}
    for r in block_res[1:]:
        channels[r] = int(sd[f"{prefix}{_conv_names(r, 1)[1]}.conv.weight"].shape[1])
    kernel = sd.get(f"{prefix}convs.0.conv.blur.kernel")
    if kernel is not None and not torch.allclose(kernel.float(), setup_filter([1, 3, 3, 1]) * 4, atol=1e-6):
        raise ModelFileError(f"{source}: unsupported blur kernel (only [1, 3, 3, 1] is supported)")
    cmax = max(channels.values())
    base, cmax = fit_channels(
        channels,
        lambda b, m: {r: min(b // r, m) for r in block_res},
        [(32768, 512), (16384, 512), *((channels[r] * r, cmax) for r in block_res), (cmax * res, cmax)],
        source=source,
    )
    return GeneratorConfig(
        img_resolution=res,
        img_channels=3,
        z_dim=style_dim,
        w_dim=style_dim,
        c_dim=0,
        mapping_layers=n_mlp,
        mapping_lr_multiplier=LR_MLP,
        channel_base=base,
        channel_max=cmax,
        architecture="skip",
        conv_clamp=None,
        num_fp16_res=0,
        use_noise=True,
    )


def _pairs(config: GeneratorConfig) -> list[tuple[str, str, str]]:
    """(our name, their name, how) for every tensor; ``how`` names the reshape between the two."""
    out = []
    for i in range(config.mapping_layers):
        out += [(f"mapping.fc{i}.weight", f"style.{i + 1}.weight", "same")]
        out += [(f"mapping.fc{i}.bias", f"style.{i + 1}.bias", "same")]
    out.append(("synthesis.b4.const", "input.input", "batch"))
    layers = [("synthesis.b4.conv1", "conv1")]
    torgbs = [("synthesis.b4.torgb", "to_rgb1")]
    block_res = [2**i for i in range(3, int(math.log2(config.img_resolution)) + 1)]
    for r in block_res:
        layers += [_conv_names(r, 0), _conv_names(r, 1)]
        torgbs.append((f"synthesis.b{r}.torgb", f"to_rgbs.{int(math.log2(r)) - 3}"))
    for j, (ours, theirs) in enumerate(layers):
        out += [
            (f"{ours}.weight", f"{theirs}.conv.weight", "batch"),
            (f"{ours}.affine.weight", f"{theirs}.conv.modulation.weight", "same"),
            (f"{ours}.affine.bias", f"{theirs}.conv.modulation.bias", "same"),
            (f"{ours}.noise_strength", f"{theirs}.noise.weight", "scalar"),
            (f"{ours}.bias", f"{theirs}.activate.bias", "same"),
            (f"{ours}.noise_const", f"noises.noise_{j}", "noise"),
        ]
    for ours, theirs in torgbs:
        out += [
            (f"{ours}.weight", f"{theirs}.conv.weight", "batch"),
            (f"{ours}.affine.weight", f"{theirs}.conv.modulation.weight", "same"),
            (f"{ours}.affine.bias", f"{theirs}.conv.modulation.bias", "same"),
            (f"{ours}.bias", f"{theirs}.bias", "rgb_bias"),
        ]
    return out


def to_ours(
    sd: Mapping[str, torch.Tensor], config: GeneratorConfig, G: Generator, *, prefix: str = "", source: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our state dict (for ``G``, which supplies the filter buffers) from a rosinality one, and notes."""
    out = {k: v for k, v in G.state_dict().items() if k.endswith("resample_filter")}
    notes = []
    for ours, theirs, how in _pairs(config):
        key = prefix + theirs
        if key not in sd:
            if how == "noise":
                out[ours] = G.state_dict()[ours]
                if not notes:
                    notes.append("the checkpoint stores no constant noise maps; seeded random ones were drawn")
                continue
            raise ModelFileError(f"{source}: missing {key}")
        v = sd[key].detach().float()
        if how in ("batch", "noise"):
            v = v[0]
        if how == "noise":
            v = v[0]
        elif how == "scalar":
            v = v.reshape([])
        elif how == "rgb_bias":
            v = v.reshape(-1)
        out[ours] = v.contiguous()
    return out, notes


def from_ours(G: Generator, config: GeneratorConfig, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """rosinality state dict of our Generator (inverse of :func:`to_ours`; blur kernels included)."""
    sd = G.state_dict()
    out: dict[str, torch.Tensor] = {}
    for ours, theirs, how in _pairs(config):
        v = sd[ours].detach().clone()
        if how == "batch":
            v = v.unsqueeze(0)
        elif how == "noise":
            v = v[None, None]
        elif how == "scalar":
            v = v.reshape([1])
        elif how == "rgb_bias":
            v = v.reshape(1, -1, 1, 1)
        out[prefix + theirs] = v
    k4 = setup_filter([1, 3, 3, 1]) * 4
    for r in [2**i for i in range(3, int(math.log2(config.img_resolution)) + 1)]:
        out[f"{prefix}{_conv_names(r, 0)[1]}.conv.blur.kernel"] = k4.clone()
        out[f"{prefix}to_rgbs.{int(math.log2(r)) - 3}.upsample.kernel"] = k4.clone()
    return out
