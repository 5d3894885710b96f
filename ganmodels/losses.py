"""Image distances that need no downloaded weights: masked pixel losses, (MS-)SSIM, PSNR and a perceptual
distance on discriminator features."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ganmodels.networks import Discriminator


def _expand_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """[N or 1, 1, H, W] weights (1 = counts) resized to ``like``'s spatial size."""
    if mask is None:
        return torch.ones_like(like[:, :1])
    if mask.ndim == 2:
        mask = mask[None, None]
    if mask.shape[-2:] != like.shape[-2:]:
        mask = F.interpolate(mask, size=like.shape[-2:], mode="area")
    return mask.to(like.dtype)


def masked_mse(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over pixels where ``weight`` [.., 1, H, W] is 1 (all pixels when None): [N]."""
    w = _expand_mask(weight, a)
    return ((a - b).square() * w).sum([1, 2, 3]) / (w.sum([1, 2, 3]) * a.shape[1]).clamp(min=1e-8)


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over weighted pixels: [N]."""
    w = _expand_mask(weight, a)
    return ((a - b).abs() * w).sum([1, 2, 3]) / (w.sum([1, 2, 3]) * a.shape[1]).clamp(min=1e-8)


def psnr(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float = 2.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for images with values spanning ``data_range`` ([-1, 1] -> 2): [N]."""
    mse = masked_mse(a.float(), b.float(), weight)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=1e-12))


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_maps(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float, window: int, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps [N, C, H', W'] (valid convolution, Wang et al. 2004 constants)."""
    c = a.shape[1]
    g = _gaussian_window(window, sigma, a.device, a.dtype)
    gx = g.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    gy = g.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, gx, groups=c), gy, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a**2
    s_bb = blur(b * b) - mu_b**2
    s_ab = blur(a * b) - mu_a * mu_b
    cs = (2 * s_ab + c2) / (s_aa + s_bb + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return lum * cs, cs


def _window_for(size: int) -> tuple[int, float]:
    """Gaussian window that fits small images (11 / 1.5 as standard, smaller for tiny images)."""
    if size >= 11:
        return 11, 1.5
    w = max(3, size - (1 - size % 2))
    return w, 1.5 * w / 11


def ssim(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float = 2.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Structural similarity per image: [N]. ``weight`` [.., 1, H, W] averages the SSIM map over known pixels."""
    window, sigma = _window_for(min(a.shape[-2:]))
    s, _ = _ssim_maps(a.float(), b.float(), data_range=data_range, window=window, sigma=sigma)
    w = _expand_mask(weight, s)
    return (s * w).sum([1, 2, 3]) / (w.sum([1, 2, 3]) * s.shape[1]).clamp(min=1e-8)


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float = 2.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) per image: [N], with as many of the 5 scales as the size allows
    (each scale at least 2x the window), weights renormalised."""
    a, b = a.float(), b.float()
    levels = 1
    while levels < 5 and min(a.shape[-2:]) // (2**levels) >= 8:
        levels += 1
    if weight is not None:
        weight = _expand_mask(weight, a)
    weights = torch.tensor(_MS_WEIGHTS[:levels], device=a.device)
    weights = weights / weights.sum()
    vals = []
    for i in range(levels):
        window, sigma = _window_for(min(a.shape[-2:]))
        s, cs = _ssim_maps(a, b, data_range=data_range, window=window, sigma=sigma)
        m = _expand_mask(weight, s)
        denom = (m.sum([1, 2, 3]) * s.shape[1]).clamp(min=1e-8)
        val = (s if i == levels - 1 else cs) * m
        vals.append((val.sum([1, 2, 3]) / denom).clamp(min=1e-6))
        if i < levels - 1:
            a = F.avg_pool2d(a, 2)
            b = F.avg_pool2d(b, 2)
            if weight is not None:
                weight = F.avg_pool2d(weight, 2)
    out = torch.ones_like(vals[0])
    for v, w in zip(vals, weights):
        out = out * v**w
    return out


class DiscriminatorPerceptual(torch.nn.Module):
    """A perceptual distance from a trained discriminator's block features (no downloaded weights).

    Each block's features are unit-normalised along channels (as LPIPS does) and compared with a masked mean
    squared difference; the block distances are averaged.
    """

    def __init__(self, D: Discriminator, *, blocks: int | None = None) -> None:
        super().__init__()
        self.D = D.eval().requires_grad_(False)
        self.blocks = blocks

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        feats = self.D.features(img)
        return feats[: self.blocks] if self.blocks else feats

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, *, weight: torch.Tensor | None = None, b_feats: list | None = None
    ) -> torch.Tensor:
        """Distance per image [N]; pass precomputed ``b_feats`` to avoid recomputing a fixed target."""
        fa = self.features(a)
        fb = b_feats if b_feats is not None else self.features(b)
        total = torch.zeros(a.shape[0], device=a.device)
        for x, y in zip(fa, fb):
            x, y = x.float(), y.float()  # features may come out of bf16 autocast; compare in fp32
            x = x * (x.square().sum(1, keepdim=True) + 1e-8).rsqrt()
            y = y * (y.square().sum(1, keepdim=True) + 1e-8).rsqrt()
            total = total + masked_mse(x, y, weight) * x.shape[1]
        return total / max(len(fa), 1)


def db_to_mse(db: float, *, data_range: float = 2.0) -> float:
    """Mean squared error that corresponds to a PSNR in dB."""
    return data_range**2 / (10 ** (db / 10))


def mse_to_db(mse: float, *, data_range: float = 2.0) -> float:
    return 10 * math.log10(data_range**2 / max(mse, 1e-12))
