"""GAN inversion: find the latent (and noise) that makes the generator reproduce a target image.

``invert`` optimises ws in W (one w broadcast to every layer) or W+ (one w per layer) from the mean w or from
an encoder's guess, with Adam and NVIDIA's learning-rate ramp, latent noise ramp and noise-map regularisation
(stylegan2-ada-pytorch ``projector.py``). The loss is pixel L2/L1, MS-SSIM and an optional perceptual distance
(discriminator features: no downloaded weights), counted only on known pixels when a mask is given.

``pivotal_tuning`` (PTI, Roich et al. 2021) then fine-tunes a copy of the synthesis network around the pivot for
high fidelity; the base model is never modified.

Both are generators that yield a step record after every optimisation step: the CLI and the GUI drive them the
same way and may stop between steps.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ganmodels.losses import DiscriminatorPerceptual, masked_l1, masked_mse, ms_ssim, psnr
from ganmodels.networks import Generator, SynthesisLayer, random_c

# --------------------------------------------------------------------------------------------------------------
# Targets, masks and noise maps


def image_to_tensor(image: np.ndarray, *, resolution: int | None = None) -> torch.Tensor:
    """RGB float [H, W, 3] in [0, 1] (or uint8) -> [1, 3, R, R] in [-1, 1], area-resized to ``resolution``."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr[..., :3], dtype=np.float32)).permute(2, 0, 1)[None]
    if resolution is not None and x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="area" if x.shape[-1] > resolution else "bicubic")
    return (x * 2 - 1).clamp(-1, 1)


def mask_to_known(mask: np.ndarray | torch.Tensor | None, *, resolution: int) -> torch.Tensor | None:
    """Editor mask [H, W] with 1 = fill -> weights [1, 1, R, R] with 1 = known pixel (area-resized)."""
    if mask is None:
        return None
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(m.shape)}")
    m = m[None, None]
    if m.shape[-2:] != (resolution, resolution):
        m = F.interpolate(m, size=(resolution, resolution), mode="area")
    known = 1 - m.clamp(0, 1)
    if float(known.sum()) < 1:
        raise ValueError("the mask covers the whole image: nothing is known to invert from")
    return known


def noise_layers(G: Generator) -> dict[str, SynthesisLayer]:
    """The synthesis layers that take per-pixel noise, by module name."""
    return {n: m for n, m in G.synthesis.named_modules() if isinstance(m, SynthesisLayer) and m.use_noise}


def default_noise(G: Generator) -> dict[str, torch.Tensor]:
    """Copies of the generator's constant noise maps: name -> [r, r]."""
    return {n: m.noise_const.detach().clone() for n, m in noise_layers(G).items()}


@contextlib.contextmanager
def noise_override(G: Generator, noise: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Temporarily use ``noise`` maps as the ``const`` noise of G (restored on exit)."""
    if not noise:
        yield
        return
    layers = noise_layers(G)
    saved = {}
    try:
        for name, value in noise.items():
            layer = layers[name]
            saved[name] = layer.noise_const
            layer.noise_const = value
        yield
    finally:
        for name, value in saved.items():
            layers[name].noise_const = value


@torch.no_grad()
def render(
    G: Generator, ws: torch.Tensor, *, noise: dict[str, torch.Tensor] | None = None, weights: dict | None = None
) -> torch.Tensor:
    """Synthesise ws [N, num_ws, w_dim] with optional noise maps and PTI-tuned synthesis weights: [N, 3, R, R]."""
    if weights:
        G = tuned_copy(G, weights)
    with noise_override(G, noise):
        return G.synthesis(ws, noise_mode="const")


@torch.no_grad()
def w_statistics(G: Generator, *, num_samples: int = 10000, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """Mean w [w_dim] and the root mean squared distance to it, from ``num_samples`` random z."""
    device = next(G.parameters()).device
    z = torch.randn([num_samples, G.z_dim], generator=generator, device=device)
    c = random_c(G, num_samples, generator=generator)
    w = torch.cat([G.mapping(z[i : i + 1000], c[i : i + 1000])[:, 0] for i in range(0, num_samples, 1000)])
    w_avg = w.mean(0)
    w_std = float(((w - w_avg).square().sum() / num_samples) ** 0.5)
    return w_avg, w_std


def noise_regularisation(noise: dict[str, torch.Tensor]) -> torch.Tensor:
    """Penalise spatial autocorrelation of noise maps at every pyramid level (NVIDIA's projector)."""
    reg = torch.zeros([])
    for v in noise.values():
        x = v[None, None]
        while True:
            reg = reg + (x * torch.roll(x, shifts=1, dims=3)).mean() ** 2
            reg = reg + (x * torch.roll(x, shifts=1, dims=2)).mean() ** 2
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    return reg


# --------------------------------------------------------------------------------------------------------------
# Optimisation inversion


@dataclasses.dataclass(frozen=True)
class InvertStep:
    """Progress of an inversion; the last step's ``ws`` / ``noise`` are the result."""

    step: int  # 1-based
    num_steps: int
    loss: float
    losses: dict[str, float]
    psnr: float  # dB on known pixels
    ws: torch.Tensor  # [1, num_ws, w_dim], detached, on the model's device
    noise: dict[str, torch.Tensor] | None  # optimised noise maps, or None
    preview: np.ndarray | None  # float32 [R, R, 3] in [0, 1] every ``preview_every`` steps and at the end

    @property
    def fraction(self) -> float:
        return self.step / self.num_steps


def _lr_schedule(t: float, *, lr: float, rampup: float, rampdown: float) -> float:
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / rampup) if rampup > 0 else ramp
    return lr * ramp


def to_preview(img: torch.Tensor) -> np.ndarray:
    """[1, 3, R, R] in [-1, 1] -> float32 [R, R, 3] in [0, 1]."""
    return ((img[0].detach().float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()


def invert(
    G: Generator,
    target: np.ndarray | torch.Tensor,
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    space: str = "w+",
    num_steps: int = 300,
    init_ws: torch.Tensor | None = None,
    lr: float = 0.1,
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    initial_noise_factor: float = 0.05,
    noise_ramp_length: float = 0.75,
    optimize_noise: bool = True,
    noise_weight: float = 1e5,
    l2_weight: float = 1.0,
    l1_weight: float = 0.0,
    ms_ssim_weight: float = 0.0,
    perceptual: DiscriminatorPerceptual | None = None,
    perceptual_weight: float = 0.1,
    w_std: float | None = None,
    preview_every: int = 10,
    generator: torch.Generator,
) -> Iterator[InvertStep]:
    """Optimise ws (and noise maps) so that G reproduces ``target``.

    target: float [H, W, 3] in [0, 1] (resized to G's resolution) or a tensor [1, 3, R, R] in [-1, 1].
    mask: [H, W] with 1 = fill: those pixels are ignored by every loss term.
    space: "w" (one w for all layers) or "w+" (one per layer). init_ws: [1, num_ws, w_dim] start (default mean w).
    """
    if space not in ("w", "w+"):
        raise ValueError("space must be 'w' or 'w+'")
    if num_steps < 1:
        raise ValueError("num_steps must be at least 1")
    device = next(G.parameters()).device
    res = G.img_resolution
    tgt = target if isinstance(target, torch.Tensor) else image_to_tensor(target, resolution=res)
    tgt = tgt.to(device=device, dtype=torch.float32)
    if tgt.shape != (1, G.img_channels, res, res):
        raise ValueError(f"target must be [1, {G.img_channels}, {res}, {res}], got {list(tgt.shape)}")
    known = mask_to_known(mask, resolution=res) if mask is not None else None
    if known is not None:
        known = known.to(device)

    if w_std is None or init_ws is None:
        w_avg, std = w_statistics(G, num_samples=2000, generator=generator)
        w_std = std if w_std is None else w_std
    if init_ws is None:
        init = w_avg.reshape(1, 1, -1).repeat(1, 1 if space == "w" else G.num_ws, 1)
    else:
        init = init_ws.detach().to(device).float()
        if init.shape != (1, G.num_ws, G.w_dim):
            raise ValueError(f"init_ws must be [1, {G.num_ws}, {G.w_dim}]")
        if space == "w":
            init = init.mean(1, keepdim=True)
    w_opt = init.clone().requires_grad_(True)  # [1, 1 or num_ws, w_dim]

    noise = None
    params: list[torch.Tensor] = [w_opt]
    if optimize_noise and noise_layers(G):
        noise = default_noise(G)  # start from the model's own constant noise (what renders use)
        for v in noise.values():
            v.requires_grad_(True)
        params += list(noise.values())
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
    # Masked pixels are set to 0 in both images for the window-based terms, so their content cannot leak in.
    tgt_known = tgt * known if known is not None else tgt
    tgt_feats = perceptual.features(tgt_known) if perceptual is not None else None
    G.requires_grad_(False)

    for step in range(num_steps):
        t = step / num_steps
        for group in opt.param_groups:
            group["lr"] = _lr_schedule(t, lr=lr, rampup=lr_rampup, rampdown=lr_rampdown)
        noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        w_noise = torch.randn(w_opt.shape, generator=generator, device=device) * noise_scale
        ws = (w_opt + w_noise).expand(1, G.num_ws, G.w_dim)
        with noise_override(G, noise):
            synth = G.synthesis(ws, noise_mode="const")
        losses: dict[str, torch.Tensor] = {}
        if l2_weight:
            losses["l2"] = masked_mse(synth, tgt, known).mean() * l2_weight
        if l1_weight:
            losses["l1"] = masked_l1(synth, tgt, known).mean() * l1_weight
        synth_known = synth * known if known is not None else synth
        if ms_ssim_weight:
            losses["ms_ssim"] = (1 - ms_ssim(synth_known, tgt_known, weight=known)).mean() * ms_ssim_weight
        if perceptual is not None and perceptual_weight:
            dist = perceptual(synth_known, tgt_known, weight=known, b_feats=tgt_feats)
            losses["perceptual"] = dist.mean() * perceptual_weight
        if noise is not None and noise_weight:
            losses["noise_reg"] = noise_regularisation(noise) * noise_weight
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if noise is not None:
            with torch.no_grad():
                for v in noise.values():
                    v.sub_(v.mean()).mul_(v.square().mean().rsqrt())
        last = step == num_steps - 1
        preview = None
        final_ws = w_opt.detach().expand(1, G.num_ws, G.w_dim).clone()
        if last or (preview_every and (step + 1) % preview_every == 0):
            with torch.no_grad(), noise_override(G, noise):
                img = G.synthesis(final_ws, noise_mode="const")
            preview = to_preview(img)
            quality = float(psnr(img, tgt, weight=known))
        else:
            quality = float(psnr(synth.detach(), tgt, weight=known))
        yield InvertStep(
            step=step + 1,
            num_steps=num_steps,
            loss=float(loss.detach()),
            losses={k: float(v.detach()) for k, v in losses.items()},
            psnr=quality,
            ws=final_ws,
            noise={k: v.detach().clone() for k, v in noise.items()} if noise is not None else None,
            preview=preview,
        )


# --------------------------------------------------------------------------------------------------------------
# Pivotal tuning


def synthesis_weights(G: Generator) -> dict[str, torch.Tensor]:
    """The tunable synthesis parameters: name -> tensor (PTI changes exactly these)."""
    return {f"synthesis.{k}": v for k, v in G.synthesis.named_parameters()}


def tuned_copy(G: Generator, weights: dict[str, torch.Tensor]) -> Generator:
    """A copy of G with PTI-tuned synthesis weights; G itself is untouched."""
    G2 = copy.deepcopy(G)
    own = synthesis_weights(G2)
    unknown = set(weights) - set(own)
    if unknown:
        raise ValueError(f"tuned weights do not fit this model: {sorted(unknown)[:3]}")
    with torch.no_grad():
        for k, v in weights.items():
            own[k].copy_(v.to(own[k].dtype))
    return G2.eval().requires_grad_(False)


@dataclasses.dataclass(frozen=True)
class TuneStep:
    """Progress of pivotal tuning; the last step's ``weights`` are the tuned synthesis parameters."""

    step: int
    num_steps: int
    loss: float
    psnr: float
    preview: np.ndarray | None
    weights: dict[str, torch.Tensor] | None  # only on the last step

    @property
    def fraction(self) -> float:
        return self.step / self.num_steps


def pivotal_tuning(
    G: Generator,
    ws_pivot: torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    noise: dict[str, torch.Tensor] | None = None,
    num_steps: int = 100,
    lr: float = 3e-4,
    l2_weight: float = 1.0,
    perceptual: DiscriminatorPerceptual | None = None,
    perceptual_weight: float = 0.1,
    locality_weight: float = 0.1,
    locality_samples: int = 2,
    preview_every: int = 10,
    generator: torch.Generator,
) -> Iterator[TuneStep]:
    """Fine-tune a copy of G's synthesis network so that ``ws_pivot`` renders ``target`` (PTI).

    A locality term keeps random nearby latents rendering as the original model did, so edits still behave.
    """
    device = next(G.parameters()).device
    res = G.img_resolution
    tgt = target if isinstance(target, torch.Tensor) else image_to_tensor(target, resolution=res)
    tgt = tgt.to(device)
    known = mask_to_known(mask, resolution=res) if mask is not None else None
    if known is not None:
        known = known.to(device)
    ws_pivot = ws_pivot.detach().to(device)
    G_tune = copy.deepcopy(G).train(False)
    G_tune.requires_grad_(False)
    params = list(synthesis_weights(G_tune).values())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    tgt_known = tgt * known if known is not None else tgt
    tgt_feats = perceptual.features(tgt_known) if perceptual is not None else None
    for step in range(num_steps):
        with noise_override(G_tune, noise):
            synth = G_tune.synthesis(ws_pivot, noise_mode="const")
        loss = masked_mse(synth, tgt, known).mean() * l2_weight
        if perceptual is not None and perceptual_weight:
            synth_known = synth * known if known is not None else synth
            loss = loss + perceptual(synth_known, tgt_known, weight=known, b_feats=tgt_feats).mean() * perceptual_weight
        if locality_weight:
            z = torch.randn([locality_samples, G.z_dim], generator=generator, device=device)
            w_rand = G.mapping(z, random_c(G, locality_samples, generator=generator))
            alpha = 0.3
            ws_near = ws_pivot + alpha * (w_rand - ws_pivot) / (w_rand - ws_pivot).norm(dim=-1, keepdim=True) * 3
            with torch.no_grad():
                ref = G.synthesis(ws_near, noise_mode="const")
            loss = loss + F.mse_loss(G_tune.synthesis(ws_near, noise_mode="const"), ref) * locality_weight
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = step == num_steps - 1
        preview = None
        if last or (preview_every and (step + 1) % preview_every == 0):
            preview = to_preview(synth)
        yield TuneStep(
            step=step + 1,
            num_steps=num_steps,
            loss=float(loss.detach()),
            psnr=float(psnr(synth.detach(), tgt, weight=known)),
            preview=preview,
            weights={k: v.detach().clone() for k, v in synthesis_weights(G_tune).items()} if last else None,
        )
