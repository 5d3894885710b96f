"""``gan-inpainter``: a feed-forward GAN inpainting network.

A masked-image encoder (masked RGB + mask -> W+) co-modulates the frozen StyleGAN2 synthesis network: the fill
always comes out of the generator, so it has the model's look, in one forward pass (no per-image optimisation).
It is trained self-supervised on the domain data and on the generator's own samples with random free-form and
box masks (``train_inpainter``); losses: L1 in the hole and outside, discriminator-feature perceptual distance
of the composite, and for generated samples the latent distance to the true ws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ganmodels.encoder import Encoder, encoder_from_state, new_encoder
from ganmodels.inpainting import (
    Inpainter,
    InpaintStep,
    _crop_square,
    check_inputs,
    feather,
    keep_known,
    poisson_blend,
    square_crop_box,
)
from ganmodels.losses import DiscriminatorPerceptual, masked_l1, psnr
from ganmodels.masks import mask_batch
from ganmodels.networks import Generator

INPAINTER_KIND = "comod-encoder"


def new_inpainter_net(G: Generator, *, channels: int = 64, channel_max: int = 256) -> Encoder:
    """An untrained masked-image encoder for G (4 input channels)."""
    return new_encoder(G, channels=channels, channel_max=channel_max, in_channels=4)


def inpainter_from_state(config: dict[str, Any], state: dict[str, torch.Tensor]) -> Encoder:
    return encoder_from_state(config, state)


def _net_input(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """img [N, 3, R, R] in [-1, 1], mask [N, 1, R, R] (1 = fill) -> [N, 4, R, R] with the hole zeroed."""
    return torch.cat([img * (1 - mask), mask], dim=1)


@torch.no_grad()
def fill(net: Encoder, G: Generator, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One forward pass: the generator's rendering of the predicted ws: [N, 3, R, R]."""
    ws, _ = net(_net_input(img, mask))
    return G.synthesis(ws, noise_mode="const")


@dataclasses.dataclass(frozen=True)
class InpainterTrainStep:
    step: int
    num_steps: int
    losses: dict[str, float]
    psnr_hole: float

    @property
    def fraction(self) -> float:
        return self.step / self.num_steps


def train_inpainter(
    net: Encoder,
    G: Generator,
    *,
    dataset: Any = None,
    num_steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    hole_weight: float = 6.0,
    valid_weight: float = 1.0,
    perceptual: DiscriminatorPerceptual | None = None,
    perceptual_weight: float = 0.5,
    latent_weight: float = 1.0,
    offset_weight: float = 0.01,
    area_range: tuple[float, float] = (0.1, 0.5),
    generator: torch.Generator,
    rng: np.random.Generator,
) -> Iterator[InpainterTrainStep]:
    """Train ``net`` in place. Half of each batch is real data (``dataset.sample``) when a dataset is given."""
    device = next(G.parameters()).device
    G.eval().requires_grad_(False)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
    res = G.img_resolution
    n_real = batch_size // 2 if dataset is not None else 0
    n_fake = batch_size - n_real
    for step in range(num_steps):
        t = step / max(num_steps, 1)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (1 - t) / 0.25) if t > 0.75 else lr
        with torch.no_grad():
            z = torch.randn([n_fake, G.z_dim], generator=generator, device=device)
            ws_true = G.mapping(z, torch.zeros([n_fake, G.c_dim], device=device), truncation_psi=0.8)
            fake = G.synthesis(ws_true, noise_mode="const")
            parts = [fake]
            if n_real:
                real = dataset.sample(n_real, generator=generator).to(device)
                if real.shape[-1] != res:
                    real = F.interpolate(real, size=(res, res), mode="area")
                parts.insert(0, real)
            img = torch.cat(parts)
            mask = torch.from_numpy(mask_batch(batch_size, res, res, rng=rng, area_range=area_range))
            mask = mask[:, None].to(device)
        ws, offsets = net(_net_input(img, mask))
        out = G.synthesis(ws, noise_mode="const")
        comp = out * mask + img * (1 - mask)
        losses = {
            "hole": masked_l1(out, img, mask).mean() * hole_weight,
            "valid": masked_l1(out, img, 1 - mask).mean() * valid_weight,
            "latent": F.mse_loss(ws[n_real:], ws_true) * latent_weight,
            "offsets": offsets.square().mean() * offset_weight,
        }
        if perceptual is not None and perceptual_weight:
            losses["perceptual"] = perceptual(comp, img).mean() * perceptual_weight
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield InpainterTrainStep(
            step=step + 1,
            num_steps=num_steps,
            losses={k: float(v.detach()) for k, v in losses.items()},
            psnr_hole=float(psnr(out.detach(), img, weight=mask).mean()),
        )
    net.eval()


class GanInpainter(Inpainter):
    """Feed-forward fill: crop a square around the mask, one network pass at the model's size, blend back."""

    needs_model = True

    def __init__(self, G: Generator, net: Encoder, *, blend: str = "feather", margin: float = 0.5) -> None:
        if blend not in ("feather", "poisson", "none"):
            raise ValueError("blend must be feather, poisson or none")
        self.G = G
        self.net = net.eval()
        self.blend = blend
        self.margin = margin
        self.name = "gan-inpainter"
        self.description = "Trained feed-forward GAN inpainter (one pass; images of the model's domain)"

    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        image, mask = check_inputs(image, mask)
        res = self.G.img_resolution
        top, left, size = square_crop_box(mask, margin=self.margin)
        crop = _crop_square(image, top, left, size, 1.0)
        crop_mask = _crop_square(mask, top, left, size, 1.0)
        interp = cv2.INTER_AREA if size > res else cv2.INTER_CUBIC
        small = cv2.resize(crop, (res, res), interpolation=interp)
        small_mask = cv2.resize(crop_mask, (res, res), interpolation=cv2.INTER_AREA)
        device = next(self.G.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].to(device) * 2 - 1
        m = (torch.from_numpy(small_mask)[None, None].to(device) > 0).float()
        out = fill(self.net, self.G, x, m)
        gen = ((out[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
        gen = np.clip(cv2.resize(gen, (size, size), interpolation=cv2.INTER_CUBIC), 0, 1)
        h, w = mask.shape
        filled = image.copy()
        ys, xs = max(top, 0), max(left, 0)
        ye, xe = min(top + size, h), min(left + size, w)
        filled[ys:ye, xs:xe] = gen[ys - top : ye - top, xs - left : xe - left]
        if self.blend == "poisson":
            result = poisson_blend(image, filled, mask)
        elif self.blend == "feather":
            result = keep_known(image, filled, feather(mask, radius=max(1.5, size / res)))
        else:
            result = keep_known(image, filled, mask)
        yield InpaintStep(1, 1, "done", preview=result, result=result)
