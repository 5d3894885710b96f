"""Generators in the layout of the PyTorch DCGAN example, behind the StyleGAN interface the editor uses.

The example's ``netG`` is ``main = nn.Sequential(ConvT(nz, 8ngf, 4, 1, 0), BN, ReLU, ConvT(8ngf, 4ngf, 4, 2, 1),
BN, ReLU, ..., ConvT(ngf, nc, 4, 2, 1), Tanh)``; its state dict has keys ``main.{N}.weight`` etc. Sizes (nz, the
channels of every layer, nc, the resolution) are read from the shapes. The adapter's mapping is the identity
(w = z, ``num_ws`` = 1, ``w_avg`` = 0), so inversion and latent editing work on z unchanged. BatchNorm runs in eval
mode with its running statistics (the example samples in training mode, i.e. with batch statistics, which would
make an image depend on the others in its batch). One-channel generators are repeated to RGB.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from ganmodels.modelfile import ModelFileError
from ganmodels.networks import config_from_dict


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
    """Everything needed to rebuild a DCGAN-example generator."""

    generator_kind: ClassVar[str] = "dcgan"

    z_dim: int = 100
    channels: tuple[int, ...] = (512, 256, 128, 64, 3)  # output channels of each transposed convolution
    batch_norm: bool = True
    bias: bool = False

    @property
    def img_resolution(self) -> int:
        return 4 * 2 ** (len(self.channels) - 1)

    @property
    def source_channels(self) -> int:
        return self.channels[-1]

    def build(self) -> DCGANGenerator:
        return DCGANGenerator(self)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DCGANConfig:
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(int(c) for c in d["channels"])
        return config_from_dict(cls, d)


class IdentityMapping(nn.Module):
    """z -> ws = z as [N, 1, z_dim]; truncation pulls z toward w_avg = 0."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = 0
        self.w_dim = z_dim
        self.num_ws = 1
        self.register_buffer("w_avg", torch.zeros([z_dim]), persistent=False)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z: [N, z_dim] -> ws: [N, 1, z_dim]."""
        x = z.to(torch.float32)
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x.unsqueeze(1)


class DCGANSynthesis(nn.Module):
    """ws [N, 1, z_dim] -> image [N, 3, R, R] through the example's ``main`` Sequential."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        if config.source_channels not in (1, 3):
            raise ValueError(f"DCGAN generators must output 1 or 3 channels, not {config.source_channels}")
        self.z_dim = config.z_dim
        self.w_dim = config.z_dim
        self.num_ws = 1
        self.img_resolution = config.img_resolution
        self.img_channels = 3
        layers: list[nn.Module] = []
        in_ch = config.z_dim
        for i, out_ch in enumerate(config.channels):
            first, last = i == 0, i == len(config.channels) - 1
            layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 1 if first else 2, 0 if first else 1, bias=config.bias))
            if last:
                layers.append(nn.Tanh())
            else:
                if config.batch_norm:
                    layers.append(nn.BatchNorm2d(out_ch))
                layers.append(nn.ReLU(True))
            in_ch = out_ch
        self.main = nn.Sequential(*layers)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", **_kwargs: Any) -> torch.Tensor:
        """ws: [N, 1, z_dim] -> img: [N, 3, R, R] in [-1, 1]. There is no noise; noise_mode is checked only."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != 1 or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, 1, {self.w_dim}], got {list(ws.shape)}")
        x = self.main(ws[:, 0].to(torch.float32)[:, :, None, None])
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return x


class DCGANGenerator(nn.Module):
    """The editor's Generator interface around a DCGAN generator: identity mapping + synthesis."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.z_dim = config.z_dim
        self.c_dim = 0
        self.w_dim = config.z_dim
        self.num_ws = 1
        self.img_resolution = config.img_resolution
        self.img_channels = 3
        self.mapping = IdentityMapping(config.z_dim)
        self.synthesis = DCGANSynthesis(config)

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1, **kwargs: Any
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi), **kwargs)


_KEY = re.compile(r"^(?:module\.)?main\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def is_dcgan(sd: Mapping[str, Any]) -> bool:
    return bool(sd) and all(isinstance(k, str) and _KEY.match(k) for k in sd)


def config_from_state_dict(sd: Mapping[str, torch.Tensor], *, source: str) -> DCGANConfig:
    """DCGANConfig from the shapes of ``main.N.*``, checking the conv / BN / ReLU ... conv / Tanh layout."""
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = _KEY.match(k)
        if m is None:
            raise ModelFileError(f"{source}: unexpected key {k!r} in a DCGAN generator")
        by_index.setdefault(int(m.group(1)), {})[m.group(2)] = v
    convs = [i for i, p in sorted(by_index.items()) if p["weight"].ndim == 4]
    if not convs:
        raise ModelFileError(f"{source}: no transposed convolutions found")
    batch_norm = any("running_mean" in p for p in by_index.values())
    step = 3 if batch_norm else 2
    z_dim = int(by_index[convs[0]]["weight"].shape[0])
    channels = []
    for n, i in enumerate(convs):
        w = by_index[i]["weight"]
        if i != n * step or tuple(w.shape[2:]) != (4, 4):
            raise ModelFileError(f"{source}: main.{i} is not where the DCGAN example layout puts a 4x4 ConvTranspose2d")
        channels.append(int(w.shape[1]))
        if n + 1 < len(convs) and batch_norm and "running_mean" not in by_index.get(i + 1, {}):
            raise ModelFileError(f"{source}: main.{i + 1} should be a BatchNorm2d")
    bias = "bias" in by_index[convs[0]]
    config = DCGANConfig(z_dim=z_dim, channels=tuple(channels), batch_norm=batch_norm, bias=bias)
    if config.source_channels not in (1, 3):
        raise ModelFileError(f"{source}: a DCGAN generator with {config.source_channels} output channels")
    return config


def to_ours(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Example keys (``main.N.*``, optionally under DataParallel's ``module.``) -> adapter keys."""
    return {"synthesis." + k.removeprefix("module."): v for k, v in sd.items()}
