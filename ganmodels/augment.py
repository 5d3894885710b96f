"""Differentiable augmentation for training GANs on small data.

DiffAugment (Zhao et al. 2020): the same random colour / translation / cutout transforms are applied to real and
generated images before D sees them, and gradients flow through them to G. ``scale`` and ``rotate`` are ADA's
geometric transforms (isotropic and anisotropic scaling, any rotation; mirrored borders, bilinear resampling).
``AdaptiveAugment`` applies each transform to a sample only with probability ``p`` and tunes ``p`` from how
over-confident D is on reals (the ADA heuristic r_t = E[sign(D(real))], Karras et al. 2020).

All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")  # the default (DiffAugment's); "scale" and "rotate" are opt-in


def _rand(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand([n, 1, 1, 1], generator=generator, device=device)


def _mix(x: torch.Tensor, y: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    """y where the per-sample mask is set, else x."""
    if apply is None:
        return y
    return torch.where(apply.reshape(-1, 1, 1, 1), y, x)


def aug_color(x: torch.Tensor, *, generator: torch.Generator, apply: torch.Tensor | None = None) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5).  # [N, C, H, W] in [-1, 1]"""
    n, dev = x.shape[0], x.device
    y = x + (_rand(n, generator, dev) - 0.5).to(x.dtype)
    mean = y.mean(dim=1, keepdim=True)
    y = (y - mean) * (_rand(n, generator, dev) * 2).to(x.dtype) + mean
    mean = y.mean(dim=[1, 2, 3], keepdim=True)
    y = (y - mean) * (_rand(n, generator, dev) + 0.5).to(x.dtype) + mean
    return _mix(x, y, apply)


def aug_translation(
    x: torch.Tensor, *, ratio: float = 0.125, generator: torch.Generator, apply: torch.Tensor | None = None
) -> torch.Tensor:
    """Random integer shift of up to ``ratio`` of the size, zero (grey) padded."""
    n, _, h, w = x.shape
    sx, sy = int(w * ratio + 0.5), int(h * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, [n, 1, 1], generator=generator, device=x.device)
    ty = torch.randint(-sy, sy + 1, [n, 1, 1], generator=generator, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")  # [H, W]
    gx = (gx[None] + tx).clamp(-1, w)  # [N, H, W], -1 / w index the zero padding
    gy = (gy[None] + ty).clamp(-1, h)
    xp = F.pad(x, [1, 1, 1, 1])  # [N, C, H+2, W+2]
    idx = ((gy + 1) * (w + 2) + (gx + 1)).reshape(n, 1, -1).expand(-1, x.shape[1], -1)
    y = xp.flatten(2).gather(2, idx).reshape_as(x)
    return _mix(x, y, apply)


def aug_cutout(
    x: torch.Tensor, *, ratio: float = 0.5, generator: torch.Generator, apply: torch.Tensor | None = None
) -> torch.Tensor:
    """Zero a random square of ``ratio`` of the size (clipped at the borders)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, w + (1 - cw % 2), [n, 1, 1], generator=generator, device=x.device)
    oy = torch.randint(0, h + (1 - ch % 2), [n, 1, 1], generator=generator, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    rx = gx[None] - ox + cw // 2  # position inside the square, [N, H, W]
    ry = gy[None] - oy + ch // 2
    inside = (rx >= 0) & (rx < cw) & (ry >= 0) & (ry < ch)
    mask = (~inside).unsqueeze(1).to(x.dtype)  # [N, 1, H, W]
    return _mix(x, x * mask, apply)


def _affine(x: torch.Tensor, theta: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    """Resample x [N, C, H, W] at output -> input maps theta [N, 2, 3] (normalised coordinates), mirrored borders."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [N, H, W, 2]
    y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False).to(x.dtype)
    return _mix(x, y, apply)


def aug_scale(
    x: torch.Tensor, *, std: float = 0.2, generator: torch.Generator, apply: torch.Tensor | None = None
) -> torch.Tensor:
    """Isotropic scaling by 2^N(0, std), then anisotropic by 2^(+-N(0, std)) along the axes (ADA's ranges)."""
    n, dev = x.shape[0], x.device
    iso = torch.exp2(torch.randn([n], generator=generator, device=dev) * std)  # [N]
    aniso = torch.exp2(torch.randn([n], generator=generator, device=dev) * std)
    theta = torch.zeros([n, 2, 3], device=dev)
    theta[:, 0, 0] = 1 / (iso * aniso)  # output -> input: divide by the picture's scale
    theta[:, 1, 1] = aniso / iso
    return _affine(x, theta, apply)


def aug_rotate(x: torch.Tensor, *, generator: torch.Generator, apply: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation by a uniform angle in [-180, 180) degrees about the centre."""
    n, dev = x.shape[0], x.device
    angle = (torch.rand([n], generator=generator, device=dev) * 2 - 1) * math.pi  # [N]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros([n, 2, 3], device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    return _affine(x, theta, apply)


_OPS = {
    "color": aug_color,
    "translation": aug_translation,
    "cutout": aug_cutout,
    "scale": aug_scale,
    "rotate": aug_rotate,
}
ALL_POLICIES = tuple(_OPS)


def diff_augment(x: torch.Tensor, *, policy: tuple[str, ...] = POLICIES, generator: torch.Generator) -> torch.Tensor:
    """Apply every transform of ``policy`` to every sample.  # [N, C, H, W] -> same"""
    for name in policy:
        x = _OPS[name](x, generator=generator)
    return x


class AdaptiveAugment:
    """Transforms applied per sample with probability ``p``; ``p`` follows D's over-fitting (ADA heuristic)."""

    def __init__(
        self,
        *,
        policy: tuple[str, ...] = POLICIES,
        p: float = 0.0,
        target: float = 0.6,
        adjust_kimg: float = 100.0,
        interval: int = 4,
    ) -> None:
        self.policy = policy
        self.p = p
        self.target = target
        self.adjust_kimg = adjust_kimg
        self.interval = interval
        self._signs: list[float] = []

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        if self.p <= 0:
            return x
        for name in self.policy:
            apply = torch.rand([x.shape[0]], generator=generator, device=x.device) < self.p
            x = _OPS[name](x, generator=generator, apply=apply)
        return x

    def observe(self, real_logits: torch.Tensor, batch_size: int) -> None:
        """Record D's logits on reals; every ``interval`` calls, move p towards r_t = target."""
        self._signs.append(real_logits.detach().sign().float().mean().item())
        if len(self._signs) >= self.interval:
            rt = sum(self._signs) / len(self._signs)
            step = (batch_size * len(self._signs)) / (self.adjust_kimg * 1000)
            self.p = float(min(max(self.p + (1 if rt > self.target else -1) * step, 0.0), 1.0))
            self._signs.clear()
