"""StyleGAN2 training: losses, lazy regularisation, EMA, augmentation, checkpoints with exact resume, DDP.

``train(...)`` is a generator: it yields a ``TrainProgress`` after every optimisation step, so the CLI (tqdm) and
any GUI drive it the same way and may stop between steps. Checkpoints are safetensors + JSON (no pickles) and hold
everything needed to continue bit-exactly: G, G_ema, D, both Adam states, the training RNG, counters and the
augmentation probability.

Multi-process training runs under ``torchrun`` (torch.distributed, nccl on GPU, gloo on CPU): every rank draws its
own samples, gradients are averaged with all_reduce, rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from ganmodels.augment import ALL_POLICIES, POLICIES, AdaptiveAugment, diff_augment
from ganmodels.networks import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    ReconDecoder,
    one_hot_c,
    random_c,
)
from ganmodels.stio import save_safetensors

LOSSES = ("ns", "hinge", "wgan-gp")
AUGMENTS = ("diffaugment", "ada", "none")


RECON_FEATURE_RES = 8  # D's activations the reconstruction head reads
RECON_MAX_RES = 32  # ... and the largest picture it rebuilds


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run (saved in every checkpoint)."""

    G: GeneratorConfig
    D: DiscriminatorConfig
    batch_size: int = 16
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    loss: str = "ns"
    r1_gamma: float = 0.05
    r1_interval: int = 16
    gp_weight: float = 10.0
    pl_weight: float = 0.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    # Mode-seeking hinge: pairs of generated pictures of one class are pushed apart while they are, on average,
    # closer than the data's pictures of that class (train_step's diversity_targets).
    diversity_weight: float = 0.0
    # Self-supervised D: a small decoder rebuilds each real picture D is shown (at up to 32 px) from D's 8 px
    # activations; this weight times the L1 error joins D's loss (FastGAN's reconstruction; ReconDecoder).
    d_recon_weight: float = 0.0
    # G rebuilds pictures of the data from codes: every training picture has one learned W code (GLO, Bojanowski et
    # al. 2018), and G's loss gains g_recon_weight x the Laplacian-pyramid L1 error of g_recon_batch pictures
    # rebuilt from their codes: a dense signal for every picture, which the adversarial loss alone gives the rare
    # ones seldom (train_step). Its gradients are small beside the adversarial ones: weights of about 10 matter.
    g_recon_weight: float = 0.0
    g_recon_batch: int = 16
    g_recon_code_lr: float = 0.003
    # ... and this weight x G's adversarial loss on the rebuilt pictures (L1 + GAN as in pix2pix): L1 alone settles
    # for a blurred mean of what a code could be; D's judgement asks for a sharp picture.
    g_recon_adv_weight: float = 0.0
    ema_kimg: float = 5.0
    ema_rampup: float | None = 0.05
    augment: str = "diffaugment"
    augment_policy: tuple[str, ...] = POLICIES
    ada_target: float = 0.6
    precision: str = "bf16"  # "bf16" (autocast) or "fp32"
    channels_last: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}")
        unknown = [t for t in self.augment_policy if t not in ALL_POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r}; use {', '.join(ALL_POLICIES)}")
        if self.diversity_weight < 0:
            raise ValueError("diversity_weight must be >= 0")
        if self.d_recon_weight < 0:
            raise ValueError("d_recon_weight must be >= 0")
        if self.g_recon_weight < 0:
            raise ValueError("g_recon_weight must be >= 0")
        if self.g_recon_adv_weight < 0:
            raise ValueError("g_recon_adv_weight must be >= 0")
        if self.g_recon_batch < 1 or not self.g_recon_code_lr > 0:
            raise ValueError("g_recon_batch must be >= 1 and g_recon_code_lr > 0")
        if self.r1_gamma < 0:
            raise ValueError("r1_gamma must be >= 0")
        if not (self.g_lr > 0 and self.d_lr > 0):
            raise ValueError("learning rates must be > 0")
        if self.ema_kimg <= 0:
            raise ValueError("ema_kimg must be > 0")
        if self.d_recon_weight > 0 and self.D.img_resolution < 2 * RECON_FEATURE_RES:
            raise ValueError(f"d_recon_weight needs pictures of at least {2 * RECON_FEATURE_RES} px")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError("precision must be bf16 or fp32")
        if self.G.img_resolution != self.D.img_resolution:
            raise ValueError("G and D resolutions differ")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["G"] = self.G.to_dict()
        d["D"] = self.D.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["G"] = GeneratorConfig.from_dict(d["G"])
        d["D"] = DiscriminatorConfig.from_dict(d["D"])
        d["betas"] = tuple(d["betas"])
        d["augment_policy"] = tuple(d["augment_policy"])
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """One optimisation step done."""

    step: int
    kimg: float
    losses: dict[str, float]
    augment_p: float
    seconds: float
    checkpoint: Path | None = None  # set on steps that wrote a checkpoint
    images_per_second: float = 0.0


@dataclasses.dataclass
class TrainState:
    """Everything that changes during training."""

    config: TrainConfig
    G: Generator
    G_ema: Generator
    D: Discriminator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    rng: torch.Generator
    step: int = 0
    cur_nimg: int = 0
    augment_p: float = 0.0
    pl_mean: float = 0.0
    seconds: float = 0.0  # wall time trained, over all sessions
    prior_kimg: float = 0.0  # training the weights had before this run (``init_from``), in kimg...
    prior_seconds: float = 0.0  # ...and seconds
    R: ReconDecoder | None = None  # D's reconstruction head, when config.d_recon_weight > 0
    opt_R: torch.optim.Adam | None = None
    codes: torch.Tensor | None = None  # [N, w_dim] one W code per training picture, when g_recon_weight > 0
    codes_v: torch.Tensor | None = None  # [N, w_dim] their Adam second moments, per row (_codes_step)...
    codes_t: torch.Tensor | None = None  # [N] int64 ... and step counts
    codes_data: str = ""  # data_fingerprint of the pictures the codes belong to ("" = not known)

    @property
    def total_kimg(self) -> float:
        """kimg shown to these weights, including the runs they were initialised from."""
        return self.prior_kimg + self.cur_nimg / 1000

    @property
    def total_seconds(self) -> float:
        """Training wall time of these weights, including the runs they were initialised from."""
        return self.prior_seconds + self.seconds


# --------------------------------------------------------------------------------------------------------------
# Set-up


def _lazy_hparams(lr: float, betas: tuple[float, float], interval: int) -> tuple[float, tuple[float, float]]:
    """Adam's lr and betas for a network regularised lazily every ``interval`` steps (0 = never; StyleGAN2
    appendix B)."""
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)


def _reg_intervals(config: TrainConfig) -> tuple[int, int]:
    """Lazy regularisation intervals of G (path length) and D (R1); 0 = none."""
    reg_g = config.pl_interval if config.pl_weight > 0 else 0
    reg_d = config.r1_interval if (config.loss == "ns" and config.r1_gamma > 0) else 0
    return reg_g, reg_d


def _lazy_adam(params: Any, lr: float, betas: tuple[float, float], interval: int) -> torch.optim.Adam:
    """Adam with lr / betas corrected for lazy regularisation (StyleGAN2 appendix B)."""
    lr, betas = _lazy_hparams(lr, betas, interval)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)


def apply_optimizer_config(state: TrainState) -> None:
    """Set the optimisers' learning rates and betas from ``state.config`` (``g_lr``, ``d_lr``, ``betas``, corrected
    for lazy regularisation; the reconstruction head follows D), e.g. after a resumed run lowered the rates or
    changed R1's weight; Adam's moments are kept."""
    cfg = state.config
    reg_g, reg_d = _reg_intervals(cfg)
    for opt, lr, interval in (
        (state.opt_G, cfg.g_lr, reg_g),
        (state.opt_D, cfg.d_lr, reg_d),
        (state.opt_R, cfg.d_lr, 0),
    ):
        if opt is None:
            continue
        for group in opt.param_groups:
            group["lr"], group["betas"] = _lazy_hparams(lr, cfg.betas, interval)


def new_state(config: TrainConfig, *, device: torch.device | str = "cpu") -> TrainState:
    """Fresh networks and optimisers, initialised from ``config.seed``."""
    device = torch.device(device)
    torch.manual_seed(config.seed)  # network init uses the default generator, like the reference
    G = config.G.build().to(device).train()
    D = config.D.build().to(device).train()
    G_ema = config.G.build().to(device).eval().requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    if config.channels_last:
        for net in (G, D, G_ema):
            net.to(memory_format=torch.channels_last)
    reg_g, reg_d = _reg_intervals(config)
    opt_G = _lazy_adam(G.parameters(), config.g_lr, config.betas, reg_g)
    opt_D = _lazy_adam(D.parameters(), config.d_lr, config.betas, reg_d)
    rng = torch.Generator(device=device)
    rng.manual_seed(config.seed + _rank())
    state = TrainState(config=config, G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D, rng=rng)
    if config.d_recon_weight > 0:
        attach_recon_decoder(state)
    return state


def attach_recon_decoder(state: TrainState) -> None:
    """Give the run a fresh :class:`ReconDecoder` and its Adam (weights from ``config.seed``), e.g. when a resumed
    run switches ``d_recon_weight`` on."""
    cfg = state.config
    device = next(state.D.parameters()).device
    channels = getattr(state.D, f"b{2 * RECON_FEATURE_RES}").conv1.weight.shape[0]  # the block that ends at 8 px
    R = ReconDecoder(channels, in_res=RECON_FEATURE_RES, out_res=min(RECON_MAX_RES, cfg.D.img_resolution))
    g = torch.Generator().manual_seed(cfg.seed + 1)
    with torch.no_grad():
        for name, p in R.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) if name.endswith("weight") else torch.zeros(p.shape))
    R = R.to(device).train()
    if cfg.channels_last:
        R.to(memory_format=torch.channels_last)
    state.R = R
    state.opt_R = _lazy_adam(R.parameters(), cfg.d_lr, cfg.betas, 0)


def data_fingerprint(dataset: Any) -> str:
    """SHA-256 of a dataset's pictures in their order ("" for a dataset without ``images``): the codes of
    ``--g-recon`` belong to one picture each, by index."""
    images = getattr(dataset, "images", None)
    if images is None:
        return ""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def _set_codes(state: TrainState, codes: torch.Tensor) -> None:
    """Make ``codes`` [N, w_dim] the run's, with fresh per-row Adam state."""
    state.codes = codes.detach().float().contiguous().requires_grad_(True)
    state.codes_v = torch.zeros_like(state.codes, requires_grad=False)
    state.codes_t = torch.zeros(len(codes), dtype=torch.long, device=codes.device)


def attach_codes(
    state: TrainState, num: int, labels: torch.Tensor | None = None, *, init: torch.Tensor | None = None
) -> None:
    """Give the run one W code per training picture, [num, w_dim] (updated by :func:`_codes_step`). Each starts as
    ``init`` [num, w_dim] when given (e.g. :func:`encoder_codes`), else as G's mapping of a random z (from
    ``config.seed``) with the picture's class (``labels`` [num] for a conditional G), a typical W of that class."""
    cfg, G = state.config, state.G
    device = next(G.parameters()).device
    if init is not None:
        if tuple(init.shape) != (num, G.w_dim):
            raise ValueError(f"starting codes of shape {tuple(init.shape)}; the run needs ({num}, {G.w_dim})")
        _set_codes(state, init.to(device).clone())
        return
    g = torch.Generator().manual_seed(cfg.seed + 2)
    z = torch.randn([num, G.z_dim], generator=g).to(device)  # [N, z_dim]
    if G.c_dim > 0:
        if labels is None or len(labels) != num:
            raise ValueError("a conditional G needs the class of every picture to start their codes")
        c = one_hot_c(G, labels.to(device))
    else:
        c = torch.zeros([num, 0], device=device)
    with torch.no_grad():  # (G's tracked mean w stays as it is)
        ws = [G.mapping(z[i : i + 256], c[i : i + 256], skip_w_avg_update=True)[:, 0] for i in range(0, num, 256)]
    _set_codes(state, torch.cat(ws))  # [N, w_dim]


def _codes_step(state: TrainState, rows: torch.Tensor) -> None:
    """Adam (beta1 = 0, the run's beta2) on the codes' ``rows`` [U] (distinct) from ``codes.grad``, each row with its
    own second moment and step count: a row is used about once every N / g_recon_batch steps, and Adam over the
    whole table would let its moment decay between visits and then step about 1 / sqrt(1 - beta2) times too far."""
    cfg = state.config
    beta2 = cfg.betas[1]
    assert state.codes is not None and state.codes_v is not None and state.codes_t is not None
    g = state.codes.grad[rows].float()  # [U, w_dim]
    v = state.codes_v[rows] * beta2 + (1 - beta2) * g.square()
    t = state.codes_t[rows] + 1  # [U]
    state.codes_v[rows] = v
    state.codes_t[rows] = t
    v_hat = v / (1 - beta2 ** t.to(v.dtype))[:, None]
    with torch.no_grad():
        state.codes[rows] -= cfg.g_recon_code_lr * g / (v_hat.sqrt() + 1e-8)


@torch.no_grad()
def encoder_codes(encoder: nn.Module, dataset: Any, *, batch: int = 64) -> torch.Tensor:
    """An encoder's guess of every picture's W (the first row of its ws): starting codes for :func:`attach_codes`
    [len(dataset), w_dim]. ``encoder``: image [N, 3, R, R] -> (ws [N, num_ws, w_dim], ...), e.g. a model's
    ``ganmodels.encoder.Encoder``; ``dataset`` has ``batch(indices)`` and ``len``."""
    device = next(encoder.parameters()).device
    out = []
    for i in range(0, len(dataset), batch):
        ws = encoder(dataset.batch(torch.arange(i, min(i + batch, len(dataset)))).to(device))[0]  # [B, num_ws, w]
        out.append(ws[:, 0].float().cpu())
    return torch.cat(out)


def pyramid_l1(a: torch.Tensor, b: torch.Tensor, *, levels: int = 3) -> torch.Tensor:
    """Mean absolute difference of pictures [N, C, H, W], summed over the levels of their Laplacian pyramids
    (band-pass levels and the low-pass residual): edges count as much as flat colour."""
    from ganmodels.metrics import laplacian_pyramid

    levels = max(1, min(levels, int(math.log2(min(a.shape[2], a.shape[3]))) - 1))
    return sum((x - y).abs().mean() for x, y in zip(laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)))


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _world() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def _gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """The code rows [B'] every rank used this step, concatenated (ranks use the same B')."""
    parts = [torch.zeros_like(rows) for _ in range(_world())]
    torch.distributed.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


def _sync_grads(module: nn.Module) -> None:
    """Average gradients over ranks (one flat all_reduce)."""
    if _world() == 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params]) / _world()
    torch.distributed.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


# --------------------------------------------------------------------------------------------------------------
# Losses


def _autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if config.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sample_ws(
    G: Generator,
    n: int,
    *,
    style_mixing_prob: float,
    generator: torch.Generator,
    device: torch.device,
    c: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random ws with style mixing: [N, num_ws, w_dim]. ``c`` [N, c_dim]: the classes (default: random)."""
    z = torch.randn([n, G.z_dim], generator=generator, device=device)
    if c is None:
        c = random_c(G, n, generator=generator)
    ws = G.mapping(z, c)
    if style_mixing_prob > 0:
        cutoff = int(torch.randint(1, ws.shape[1], [], generator=generator, device=device))
        mix = torch.rand([], generator=generator, device=device) < style_mixing_prob
        if bool(mix):
            z2 = torch.randn([n, G.z_dim], generator=generator, device=device)
            ws = ws.clone()
            ws[:, cutoff:] = G.mapping(z2, c, skip_w_avg_update=True)[:, cutoff:]
    return ws


class _Augmenter:
    def __init__(self, config: TrainConfig, p: float) -> None:
        self.config = config
        self.ada = (
            AdaptiveAugment(policy=config.augment_policy, p=p, target=config.ada_target)
            if config.augment == "ada"
            else None
        )

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.config.augment == "diffaugment":
            return diff_augment(x, policy=self.config.augment_policy, generator=generator)
        if self.ada is not None:
            return self.ada(x, generator=generator)
        return x

    @property
    def p(self) -> float:
        return self.ada.p if self.ada is not None else (1.0 if self.config.augment == "diffaugment" else 0.0)


def _d_logits(
    D: Discriminator,
    img: torch.Tensor,
    c: torch.Tensor,
    aug: _Augmenter,
    rng: torch.Generator,
    cl: bool,
    recon: ReconDecoder | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's logits [N, 1] for the augmented pictures and, with ``recon``, its L1 error rebuilding them from the same
    D pass (else None)."""
    x = aug(img, rng)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    if recon is None:
        return D(x, c).float(), None
    logits, feat = D.forward_with_features(x, c, feature_res=recon.in_res)  # feat: [N, C, 8, 8]
    target = F.adaptive_avg_pool2d(x.float(), recon.out_res).detach()  # [N, 3, r, r]
    return logits.float(), (recon(feat).float() - target).abs().mean()


def train_step(
    state: TrainState,
    reals: torch.Tensor,
    aug: _Augmenter,
    real_labels: torch.Tensor | None = None,
    *,
    diversity_targets: torch.Tensor | None = None,
    rebuild: tuple[torch.Tensor, torch.Tensor] | None = None,
    rebuild_labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """One G step and one D step (with lazy R1 / path-length regularisation when due; with ``g_recon_weight > 0``
    G's step also rebuilds pictures of the data from their codes, and the codes take a step).

    reals: [B, 3, R, R] float32 in [-1, 1] on the training device; real_labels: [B] class indices (needed when
    the networks are conditional). Generated pictures get classes drawn by the G's class frequencies.
    diversity_targets: [max(c_dim, 1)] the data's :func:`diversity_targets`, needed when ``diversity_weight > 0``:
    then pictures i and i + B/2 share a class, and G is pushed to make them, on average over the pairs, at least
    as different as two of the data's pictures of that class (a hinge: no push once they are).
    With ``d_recon_weight > 0`` D's pass over the reals also trains a head rebuilding them (:class:`ReconDecoder`).
    ``rebuild``: (indices [B'], pictures [B', 3, R, R], unflipped) of the data for G to rebuild from their codes
    (needed when ``g_recon_weight > 0``, with the run's codes attached); ``rebuild_labels`` [B'] their classes
    (needed for D's judgement of them, ``g_recon_adv_weight > 0``, with conditional networks).
    """
    cfg = state.config
    G, D, rng = state.G, state.D, state.rng
    device = reals.device
    batch = reals.shape[0]
    cl = cfg.channels_last
    losses: dict[str, float] = {}
    if G.c_dim > 0 and real_labels is None:
        raise ValueError("a conditional G needs the labels of the real pictures")
    use_rebuild = cfg.g_recon_weight > 0
    if use_rebuild and (rebuild is None or state.codes is None):
        raise ValueError("g_recon_weight > 0 needs the run's codes (attach_codes) and pictures of the data to rebuild")
    judge_rebuild = use_rebuild and cfg.g_recon_adv_weight > 0
    if judge_rebuild and G.c_dim > 0 and rebuild_labels is None:
        raise ValueError("g_recon_adv_weight > 0 with a conditional G needs the classes of the rebuilt pictures")
    if cfg.d_recon_weight > 0 and state.R is None:
        attach_recon_decoder(state)
    apply_optimizer_config(state)  # the config's (a resumed run may have changed them)
    recon = state.R if cfg.d_recon_weight > 0 else None
    real_c = one_hot_c(G, real_labels) if G.c_dim > 0 else torch.zeros([batch, 0], device=device)  # [B, c_dim]
    gen_c = random_c(G, batch, generator=rng)  # [B, c_dim]
    half = batch // 2
    use_div = cfg.diversity_weight > 0 and half > 0
    if use_div:
        if diversity_targets is None:
            raise ValueError("diversity_weight > 0 needs the data's diversity_targets")
        gen_c = torch.cat([gen_c[:half], gen_c[:half], gen_c[2 * half :]])  # pictures i and i + half share a class

    # ---- G main: non-saturating / hinge / wgan generator loss.
    G.requires_grad_(True)
    D.requires_grad_(False)
    with _autocast(cfg, device):
        ws = sample_ws(G, batch, style_mixing_prob=cfg.style_mixing_prob, generator=rng, device=device, c=gen_c)
        fake = G.synthesis(ws, noise_mode="random", generator=rng)  # [B, 3, R, R]
        fake_logits, _ = _d_logits(D, fake, gen_c, aug, rng, cl)
    loss_g = F.softplus(-fake_logits).mean() if cfg.loss == "ns" else -fake_logits.mean()
    losses["G"] = loss_g.item()
    if use_div:
        dist = (fake[:half].float() - fake[half : 2 * half].float()).abs().mean([1, 2, 3]) / 2  # [half], [0, 1] units
        k = gen_c[:half].argmax(1) if G.c_dim > 0 else torch.zeros(half, dtype=torch.long, device=device)
        ratio = (dist / diversity_targets[k]).mean()
        loss_g = loss_g + cfg.diversity_weight * F.relu(1 - ratio)
        losses["G_div"] = ratio.item()  # generated / data distance within a class
    if use_rebuild:  # G draws pictures of the data from their codes (GLO)
        assert rebuild is not None and state.codes is not None
        rows, targets = rebuild[0].to(device), rebuild[1].to(device)
        with _autocast(cfg, device):
            ws_rec = state.codes[rows][:, None].expand(-1, G.num_ws, -1)  # [B', num_ws, w_dim]
            rebuilt = G.synthesis(ws_rec, noise_mode="const")  # [B', 3, R, R]
            if judge_rebuild:
                rec_labels = torch.zeros(len(rows), dtype=torch.long) if rebuild_labels is None else rebuild_labels
                rec_c = one_hot_c(G, rec_labels)  # [B', c_dim] ([B', 0] for an unconditional G)
                rec_logits, _ = _d_logits(D, rebuilt, rec_c, aug, rng, cl)
        error = pyramid_l1(rebuilt.float(), targets.float())
        loss_g = loss_g + cfg.g_recon_weight * error
        losses["G_recon"] = error.item()
        if judge_rebuild:
            adv = F.softplus(-rec_logits).mean() if cfg.loss == "ns" else -rec_logits.mean()
            loss_g = loss_g + cfg.g_recon_adv_weight * adv
            losses["G_recon_adv"] = adv.item()
        state.codes.grad = None
    state.opt_G.zero_grad(set_to_none=True)
    loss_g.backward()

    # ---- G path-length regularisation (lazy).
    if cfg.pl_weight > 0 and state.step % cfg.pl_interval == 0:
        n = max(batch // cfg.pl_batch_shrink, 1)
        with _autocast(cfg, device):
            ws_pl = sample_ws(G, n, style_mixing_prob=cfg.style_mixing_prob, generator=rng, device=device)
            img_pl = G.synthesis(ws_pl, noise_mode="random", generator=rng).float()
        noise = torch.randn(img_pl.shape, generator=rng, device=device) / math.sqrt(img_pl.shape[2] * img_pl.shape[3])
        (grads,) = torch.autograd.grad((img_pl * noise).sum(), ws_pl, create_graph=True)
        lengths = grads.float().square().sum(2).mean(1).sqrt()  # [n]
        state.pl_mean = state.pl_mean + cfg.pl_decay * (lengths.mean().item() - state.pl_mean)
        loss_pl = (lengths - state.pl_mean).square().mean() * cfg.pl_weight * cfg.pl_interval
        (loss_pl + 0 * img_pl[:, 0, 0, 0].sum()).backward()
        losses["G_pl"] = loss_pl.item()
    _sync_grads(G)
    for p in G.parameters():
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
    state.opt_G.step()
    if use_rebuild:
        assert state.codes is not None and state.codes.grad is not None
        if _world() > 1:  # every rank rebuilt other pictures: the codes move by the mean over ranks
            torch.distributed.all_reduce(state.codes.grad)
            state.codes.grad /= _world()
            rows = _gather_rows(rows)
        torch.nan_to_num(state.codes.grad, nan=0, posinf=1e5, neginf=-1e5, out=state.codes.grad)
        _codes_step(state, rows.unique())
        state.codes.grad = None

    # ---- D main (+ lazy R1 on the same real pass, or WGAN-GP).
    G.requires_grad_(False)
    D.requires_grad_(True)
    do_r1 = cfg.loss == "ns" and cfg.r1_gamma > 0 and state.step % cfg.r1_interval == 0
    reals = reals.detach().requires_grad_(do_r1)
    with _autocast(cfg, device):
        fake_logits, _ = _d_logits(D, fake.detach(), gen_c, aug, rng, cl)
        real_logits, loss_rec = _d_logits(D, reals, real_c, aug, rng, cl, recon)
    if cfg.loss == "ns":
        loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    elif cfg.loss == "hinge":
        loss_d = F.relu(1 + fake_logits).mean() + F.relu(1 - real_logits).mean()
    else:
        loss_d = fake_logits.mean() - real_logits.mean() + 0.001 * real_logits.square().mean()
    total_d = loss_d
    if loss_rec is not None:
        total_d = total_d + cfg.d_recon_weight * loss_rec
        losses["D_recon"] = loss_rec.item()
    if do_r1:
        (r1_grads,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
        r1 = r1_grads.float().square().sum([1, 2, 3])  # [B]
        loss_r1 = r1.mean() * (cfg.r1_gamma / 2) * cfg.r1_interval
        total_d = total_d + loss_r1
        losses["D_r1"] = loss_r1.item()
    if cfg.loss == "wgan-gp":
        alpha = torch.rand([batch, 1, 1, 1], generator=rng, device=device)
        mixed = (alpha * reals.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        with _autocast(cfg, device):
            mixed_logits, _ = _d_logits(D, mixed, real_c, aug, rng, cl)
        (gp_grads,) = torch.autograd.grad(mixed_logits.sum(), mixed, create_graph=True)
        gp = (gp_grads.float().flatten(1).norm(dim=1) - 1).square().mean() * cfg.gp_weight
        total_d = total_d + gp
        losses["D_gp"] = gp.item()
    state.opt_D.zero_grad(set_to_none=True)
    if recon is not None:
        state.opt_R.zero_grad(set_to_none=True)
    total_d.backward()
    for net, opt in ((D, state.opt_D), (recon, state.opt_R)):
        if net is None:
            continue
        _sync_grads(net)
        for p in net.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
    losses["D"] = loss_d.item()
    losses["D_real"] = real_logits.mean().item()
    losses["D_fake"] = fake_logits.mean().item()
    if aug.ada is not None:
        aug.ada.observe(real_logits, batch * _world())

    # ---- EMA of G.
    world_batch = batch * _world()
    state.cur_nimg += world_batch
    state.step += 1
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, state.cur_nimg * cfg.ema_rampup)
    beta = 0.5 ** (world_batch / max(ema_nimg, 1e-8))
    update_ema(state.G_ema, G, beta=beta)
    return losses


def diversity_targets(dataset: Any, c_dim: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """How different two of the data's pictures of one class are on average (:func:`metrics.intra_class_distance`,
    first 64 of each class): float32 [max(c_dim, 1)]; a class with fewer than two pictures gets the classes' mean.
    One entry for an unconditional G (all pictures one class)."""
    from ganmodels.metrics import intra_class_distance

    images = getattr(dataset, "images", None)  # [N, R, R, 3] uint8
    if images is None:
        raise ValueError("the diversity loss needs the dataset's pictures (an ImageDataset)")
    labels = dataset.labels if c_dim > 0 else np.zeros(len(images), np.int64)
    d = intra_class_distance(images, labels, max(c_dim, 1))  # [K] float64
    known = torch.isfinite(d)
    if not bool(known.any()):
        raise ValueError("the diversity loss needs two pictures of one class")
    d[~known] = d[known].mean()
    return d.float().clamp(min=1e-3).to(device)


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, *, beta: float) -> None:
    """G_ema = beta * G_ema + (1 - beta) * G for parameters; buffers copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


# --------------------------------------------------------------------------------------------------------------
# Checkpoints


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state as safetensors-ready tensors (``prefix.state.<param>.<name>``) + JSON-able groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}.state.{idx}.{k}"] = t.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def load_optimizer(opt: torch.optim.Optimizer, prefix: str, f: Any, meta: dict[str, Any]) -> None:
    """Inverse of ``optimizer_tensors``: ``f`` is an open ``safe_open`` file, ``meta`` the groups dictionary."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    pre = f"{prefix}.state."
    for k in f.keys():
        if k.startswith(pre):
            idx, name = k[len(pre) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = f.get_tensor(k)
    for st in state.values():  # a compact file leaves out Adam's first moment when beta1 = 0 (see save_checkpoint)
        if "exp_avg_sq" in st and "exp_avg" not in st:
            st["exp_avg"] = torch.zeros_like(st["exp_avg_sq"])
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give every per-parameter optimiser tensor the memory layout of its parameter (e.g. channels_last)."""
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def save_checkpoint(
    state: TrainState,
    path: str | Path,
    *,
    extra: dict[str, Any] | None = None,
    compact: bool = False,
    data_labels: np.ndarray | None = None,
) -> Path:
    """Write a resumable snapshot (atomic: temp file + rename).

    ``compact`` stores weights in fp16 and Adam's second moments in bf16, and leaves out the first moments when
    beta1 is 0 (under half the size; resuming continues the run closely but not bit-exactly) for snapshots that
    must be small, e.g. committed to git. ``data_labels`` (int [N]) keeps the class labels of a conditional run's
    data with it (see :func:`checkpoint_labels`).
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    nets = [("G", state.G), ("G_ema", state.G_ema), ("D", state.D)] + ([("R", state.R)] if state.R is not None else [])
    for name, net in nets:
        for k, v in net.state_dict().items():
            v = v.detach().cpu().contiguous()
            tensors[f"{name}.{k}"] = v.half() if compact and v.is_floating_point() else v
    t_g, m_g = optimizer_tensors("opt_G", state.opt_G)
    t_d, m_d = optimizer_tensors("opt_D", state.opt_D)
    tensors.update(t_g)
    tensors.update(t_d)
    opt_meta = {"opt_G": m_g, "opt_D": m_d}
    if state.R is not None:
        t_r, opt_meta["opt_R"] = optimizer_tensors("opt_R", state.opt_R)
        tensors.update(t_r)
    if state.codes is not None and state.codes_v is not None and state.codes_t is not None:
        codes, v = state.codes.detach().cpu().contiguous(), state.codes_v.detach().cpu().contiguous()
        tensors["codes"] = codes.half() if compact else codes
        tensors["codes.v"] = v.bfloat16() if compact else v
        tensors["codes.t"] = state.codes_t.detach().cpu().contiguous()
    if compact:
        # With beta1 = 0 (the StyleGAN default) Adam's first moment is just the last gradient, overwritten by the
        # next step: it is not stored (load_optimizer puts zeros back), which changes nothing.
        no_momentum = all(g["betas"][0] == 0 for m in opt_meta.values() for g in m["param_groups"])
        for k in list(tensors):
            if no_momentum and k.startswith("opt_") and k.endswith(".exp_avg"):
                del tensors[k]
            elif k.startswith("opt_") and tensors[k].is_floating_point() and tensors[k].ndim > 0:
                tensors[k] = tensors[k].bfloat16()
    tensors["rng"] = state.rng.get_state()
    if data_labels is not None:
        tensors["data.labels"] = torch.as_tensor(np.asarray(data_labels, dtype=np.int64))
    meta = {
        "format": "gan-editor-train/1",
        "config": json.dumps(state.config.to_dict()),
        "counters": json.dumps(
            {
                "step": state.step,
                "cur_nimg": state.cur_nimg,
                "augment_p": state.augment_p,
                "pl_mean": state.pl_mean,
                "seconds": state.seconds,
                "prior_kimg": state.prior_kimg,
                "prior_seconds": state.prior_seconds,
                "codes_data": state.codes_data,
            }
        ),
        **{k: json.dumps(v) for k, v in opt_meta.items()},
        "extra": json.dumps(extra or {}),
    }
    return save_safetensors(path, tensors, meta)


def load_checkpoint(
    path: str | Path, *, device: torch.device | str = "cpu", channels_last: bool | None = None
) -> TrainState:
    """Rebuild the exact TrainState saved by ``save_checkpoint``.

    ``channels_last`` (when not None) switches the run's memory layout: weights and Adam moments are converted,
    the numbers stay the same, only the speed changes.
    """
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "gan-editor-train/1":
            raise ValueError(f"{path.name} is not a gan-editor training checkpoint")
        config = TrainConfig.from_dict(json.loads(meta["config"]))
        if channels_last is not None and channels_last != config.channels_last:
            config = dataclasses.replace(config, channels_last=channels_last)
        state = new_state(config, device=device)
        for name, net in (("G", state.G), ("G_ema", state.G_ema), ("D", state.D)):
            pre = f"{name}."
            sd = {k[len(pre) :]: f.get_tensor(k) for k in f.keys() if k.startswith(pre)}
            net.load_state_dict(sd)
        load_optimizer(state.opt_G, "opt_G", f, json.loads(meta["opt_G"]))
        load_optimizer(state.opt_D, "opt_D", f, json.loads(meta["opt_D"]))
        _match_layouts(state.opt_G)
        _match_layouts(state.opt_D)
        if state.R is not None and "opt_R" in meta:  # else the head starts afresh
            state.R.load_state_dict({k[2:]: f.get_tensor(k) for k in f.keys() if k.startswith("R.")})
            load_optimizer(state.opt_R, "opt_R", f, json.loads(meta["opt_R"]))
            _match_layouts(state.opt_R)
        if "codes" in f.keys():
            device_ = next(state.G.parameters()).device
            _set_codes(state, f.get_tensor("codes").to(device_))
            if "codes.v" in f.keys() and "codes.t" in f.keys():
                state.codes_v = f.get_tensor("codes.v").float().to(device_).contiguous()
                state.codes_t = f.get_tensor("codes.t").long().to(device_).contiguous()
        state.rng.set_state(f.get_tensor("rng"))
    counters = json.loads(meta["counters"])
    state.step = int(counters["step"])
    state.cur_nimg = int(counters["cur_nimg"])
    state.augment_p = float(counters["augment_p"])
    state.pl_mean = float(counters["pl_mean"])
    state.seconds = float(counters["seconds"])
    state.prior_kimg = float(counters.get("prior_kimg", 0.0))
    state.prior_seconds = float(counters.get("prior_seconds", 0.0))
    state.codes_data = str(counters.get("codes_data", "")) if state.codes is not None else ""
    return state


@dataclasses.dataclass(frozen=True)
class TransferReport:
    """What :func:`init_from` took over, per network: tensors copied, adapted (widened or mapped to new classes) and
    left freshly initialised."""

    copied: dict[str, int]
    adapted: dict[str, list[str]]
    fresh: dict[str, list[str]]
    augment_p: float | None
    classes_mapped: bool = False  # the class embeddings were taken class by class (``init_from``'s class_map)

    def summary(self) -> str:
        parts = []
        for net in self.copied:
            s = f"{net}: {self.copied[net]} tensors copied"
            if self.adapted.get(net):
                names = self.adapted[net]
                shown = ", ".join(names[:3]) + (f", ... {len(names) - 3} more" if len(names) > 3 else "")
                s += f", {len(names)} adapted ({shown})"
            if self.fresh.get(net):
                s += f", {len(self.fresh[net])} new"
            parts.append(s)
        return "; ".join(parts)


def _fan_in_gain(new_in: int, old_in: int) -> float:
    """Factor for weights moved from a layer with ``old_in`` inputs to one with ``new_in``: the equalised
    learning-rate gain is 1 / sqrt(fan_in), so the stored weights scale by sqrt(new_in / old_in) to compute the same."""
    return math.sqrt(new_in / old_in)


def _widen(v: torch.Tensor, t: torch.Tensor, key: str) -> bool:
    """Copy the narrower tensor ``t`` into the leading block of ``v`` so that the wider layer computes what ``t``'s did.

    Weights ([out, in] or [out, in, kh, kw]): the new input columns of the old outputs are zeroed, so whatever the
    new channels carry does not reach the old ones until training grows those columns; the new output rows keep
    their fresh initialisation. The old block is scaled by sqrt(in_new / in_old) because every layer's equalised
    learning-rate gain is 1 / sqrt(fan_in) (demodulated convolutions are indifferent to the scale). Biases (and G's
    constant input) take the old values in front and keep their initialisation behind. D's 4x4 head (``b4.``) is
    left to its fresh initialisation: its convolution's last input is the minibatch-stddev channel and its output
    becomes a label projection when classes are added, so a wider copy would not compute the same.
    """
    if key.startswith("b4.") or t.ndim != v.ndim or tuple(t.shape) == tuple(v.shape):
        return False
    if any(a > b for a, b in zip(t.shape, v.shape)):
        return False
    if key.endswith(".weight") and t.ndim in (2, 4) and t.shape[2:] == v.shape[2:]:
        v[:, t.shape[1] :] = 0
        v[: t.shape[0], : t.shape[1]] = t.to(v.dtype) * _fan_in_gain(v.shape[1], t.shape[1])
        return True
    is_const = key.endswith("const") and t.ndim == 3 and t.shape[1:] == v.shape[1:]
    if (key.endswith(".bias") and t.ndim == 1) or is_const:
        v[: t.shape[0]] = t.to(v.dtype)
        return True
    return False


def _map_classes(v: torch.Tensor, t: torch.Tensor, class_map: np.ndarray) -> bool:
    """A class embedding ``t`` ([out, K_old]) for new classes: column j of ``v`` ([out, K_new]) takes old class
    ``class_map[j]``'s, scaled by sqrt(K_new / K_old) for the equalised learning-rate gain, so a one-hot label of a
    new class embeds exactly as its old class did. For -1 the column is zero: that class embeds as the bias alone."""
    if t.ndim != 2 or v.ndim != 2 or t.shape[0] != v.shape[0] or v.shape[1] != len(class_map):
        return False
    if len(class_map) and int(class_map.max()) >= t.shape[1]:
        return False
    idx = torch.as_tensor(np.maximum(class_map, 0), dtype=torch.long)
    cols = t.to(v.dtype)[:, idx] * _fan_in_gain(v.shape[1], t.shape[1])  # [out, K_new]
    v.copy_(torch.where(torch.as_tensor(class_map >= 0)[None, :], cols, torch.zeros_like(cols)))
    return True


def _transfer(
    net: nn.Module, src: dict[str, torch.Tensor], *, class_map: np.ndarray | None = None
) -> tuple[int, list[str], list[str]]:
    """Copy the tensors of ``src`` that fit ``net``; widen narrower ones (more channels, a new class input) so that
    the network computes what the source did (:func:`_widen`); with ``class_map``, class embeddings are mapped from
    the old classes to the new ones (:func:`_map_classes`)."""
    copied, adapted, fresh = 0, [], []
    with torch.no_grad():
        for k, v in net.state_dict().items():
            t = src.get(k)
            if (
                t is not None
                and class_map is not None
                and k.endswith("mapping.embed.weight")
                and _map_classes(v, t, class_map)
            ):
                adapted.append(k)
            elif t is not None and tuple(t.shape) == tuple(v.shape):
                v.copy_(t.to(v.dtype))
                copied += 1
            elif t is not None and _widen(v, t, k):
                adapted.append(k)
            else:
                fresh.append(k)
    return copied, adapted, fresh


def init_from(state: TrainState, source: str | Path, *, class_map: np.ndarray | None = None) -> TransferReport:
    """Start a fresh run from the weights of a training checkpoint or a model file (transfer learning).

    Tensors whose names and shapes match are copied into G, G_ema and D. Narrower ones are widened (:func:`_widen`)
    so that a wider channel base starts out computing exactly what the source did, and a new class input (``--cond``)
    leaves G's mapping of z as it was (zero class columns); D then gets a freshly initialised class embedding and
    projection head. ``class_map`` (int [c_dim], e.g. from :func:`ganmodels.clusters.class_correspondence`) gives
    every class of the new run a class of the source (-1: none); its embedding in G and D starts as that class's, so
    finer classes split from the source's start out drawing and judging as their parent did (ValueError for a map
    that is not c_dim entries in -1..K_old-1). D's reconstruction head is copied from a training checkpoint when both
    have one. Optimiser state and counters start fresh; the augmentation probability of a training checkpoint is
    carried over (``augment_p`` of the report), and the source's training (kimg and time, from a checkpoint's
    counters or a model's card) goes to ``state.prior_kimg`` / ``prior_seconds``. Raises ValueError when nothing
    fits.
    """
    source = Path(source)
    try:
        with safe_open(str(source), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())

            def prefixed(pre: str) -> dict[str, torch.Tensor]:
                return {k[len(pre) :]: f.get_tensor(k) for k in keys if k.startswith(pre)}

            if meta.get("format") == "gan-editor-train/1":
                srcs = {"G": prefixed("G."), "G_ema": prefixed("G_ema."), "D": prefixed("D."), "R": prefixed("R.")}
                counters = json.loads(meta["counters"])
                augment_p: float | None = float(counters.get("augment_p", 0.0))
                prior = (
                    float(counters.get("prior_kimg", 0.0)) + int(counters.get("cur_nimg", 0)) / 1000,
                    float(counters.get("prior_seconds", 0.0)) + float(counters.get("seconds", 0.0)),
                )
            elif str(meta.get("format", "")).startswith("gan-editor-model"):
                g = prefixed("generator.")
                srcs = {"G": g, "G_ema": g, "D": prefixed("discriminator.")}
                augment_p = None
                card = json.loads(meta.get("card") or "{}")
                kimg, hours = card.get("kimg"), card.get("hours")
                prior = (
                    float(kimg) if isinstance(kimg, (int, float)) else 0.0,
                    float(hours) * 3600 if isinstance(hours, (int, float)) else 0.0,
                )
            else:
                raise ValueError(f"{source.name} is neither a training checkpoint nor a gan-editor model file")
    except (OSError, SafetensorError) as e:
        raise ValueError(f"cannot read {source}: {e}") from e
    copied: dict[str, int] = {}
    adapted: dict[str, list[str]] = {}
    fresh: dict[str, list[str]] = {}
    nets = [("G", state.G), ("G_ema", state.G_ema), ("D", state.D)]
    if state.R is not None and srcs.get("R"):
        nets.append(("R", state.R))
    if class_map is not None:
        class_map = np.asarray(class_map, dtype=np.int64)
        old = srcs["G"].get("mapping.embed.weight")
        k_old = old.shape[1] if old is not None and old.ndim == 2 else 0
        if class_map.shape != (state.G.c_dim,) or (
            len(class_map) and (class_map.min() < -1 or class_map.max() >= k_old)
        ):
            raise ValueError(
                f"class_map must give each of the {state.G.c_dim} classes one of the source's {k_old} (or -1)"
            )
    for name, net in nets:
        copied[name], adapted[name], fresh[name] = _transfer(net, srcs[name], class_map=class_map)
    if copied["G"] == 0:
        raise ValueError(f"no generator weight of {source.name} fits this network (other resolution or channels?)")
    if state.config.augment == "ada" and augment_p is not None:
        state.augment_p = augment_p
    state.prior_kimg, state.prior_seconds = prior
    mapped = class_map is not None and all("mapping.embed.weight" in adapted[n] for n in ("G", "G_ema", "D"))
    return TransferReport(copied=copied, adapted=adapted, fresh=fresh, augment_p=augment_p, classes_mapped=mapped)


def checkpoint_extra(path: str | Path) -> dict[str, Any]:
    """The ``extra`` dictionary saved with a training checkpoint (e.g. the data options of a compact snapshot)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            extra = json.loads((f.metadata() or {}).get("extra") or "{}")
    except (OSError, ValueError, json.JSONDecodeError):
        return {}
    return extra if isinstance(extra, dict) else {}


def checkpoint_labels(path: str | Path) -> np.ndarray | None:
    """The data labels saved with a training checkpoint (int64 [N]), or None."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor("data.labels").numpy() if "data.labels" in f.keys() else None
    except (OSError, SafetensorError):
        return None


def save_run_snapshot(state: TrainState, run_dir: str | Path, dataset: Any) -> Path:
    """Save a run's snapshot as ``RUN_DIR/snapshot-<kimg>k-<step>.safetensors`` (sorting by name sorts by progress),
    keeping the data's class labels with it when the model is conditional (``dataset.labels``)."""
    labels = getattr(dataset, "labels", None) if state.G.c_dim > 0 else None
    name = f"snapshot-{state.cur_nimg // 1000:06d}k-{state.step:08d}.safetensors"
    return save_checkpoint(state, Path(run_dir) / name, data_labels=labels)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``snapshot-*.safetensors`` of a run directory."""
    snaps = sorted(Path(run_dir).glob("snapshot-*.safetensors"))
    return snaps[-1] if snaps else None


# --------------------------------------------------------------------------------------------------------------
# The loop


def trained_seconds(wall: float, cpu: float) -> float:
    """The part of a step's ``wall`` seconds to count as training time: over a long step in which the process used
    almost no CPU (``cpu`` seconds; it was stopped with SIGSTOP, or the machine slept) only that CPU time counts."""
    return cpu if wall > 30 and cpu < 0.05 * wall else wall


def train(
    state: TrainState,
    dataset: Any,
    *,
    total_kimg: float,
    run_dir: str | Path | None = None,
    snapshot_minutes: float = 10.0,
    snapshot_kimg: float | None = None,
    keep_snapshots: int = 3,
    on_snapshot: Any = None,
) -> Iterator[TrainProgress]:
    """Train until ``total_kimg`` thousand images have been shown, yielding after every step.

    ``dataset`` has ``sample(batch_size, generator=...) -> [B, 3, R, R]`` in [-1, 1] (a conditional run's, an
    :class:`~ganmodels.dataset.ImageDataset`, also ``sample_labeled`` and ``labels``, which its snapshots keep).
    Snapshots go to ``run_dir`` every ``snapshot_minutes`` of wall time (or every ``snapshot_kimg``) and at the
    end; ``on_snapshot(state, path)`` runs after each (e.g. to write sample grids). Only rank 0 writes.
    """
    cfg = state.config
    device = next(state.G.parameters()).device
    aug = _Augmenter(cfg, state.augment_p)
    per_rank = cfg.batch_size // _world()
    if per_rank * _world() != cfg.batch_size:
        raise ValueError("batch_size must be divisible by the number of processes")
    last_snap_time = time.monotonic()
    last_snap_nimg = state.cur_nimg
    t_prev = time.monotonic()
    cpu_prev = time.process_time()
    conditional = state.G.c_dim > 0
    if conditional:
        classes = getattr(dataset, "num_classes", 0)
        if not 0 < classes <= state.G.c_dim:
            raise ValueError(f"the networks are conditional on {state.G.c_dim} classes; the dataset has {classes}")
    targets = diversity_targets(dataset, state.G.c_dim, device=device) if cfg.diversity_weight > 0 else None
    if cfg.g_recon_weight > 0:
        if not hasattr(dataset, "batch"):
            raise ValueError("g_recon_weight > 0 needs a dataset of pictures (an ImageDataset)")
        fingerprint = data_fingerprint(dataset)
        if state.codes is None:
            labels_all = getattr(dataset, "labels", None) if conditional else None
            attach_codes(state, len(dataset), None if labels_all is None else torch.as_tensor(labels_all))
        elif len(state.codes) != len(dataset):
            raise ValueError(f"the run's codes are for {len(state.codes)} pictures; the dataset has {len(dataset)}")
        if state.codes_data and fingerprint and state.codes_data != fingerprint:
            raise ValueError(
                "the run's codes were learnt on other pictures than this dataset's (or the same in another order): "
                "resume on the dataset the run was trained on"
            )
        state.codes_data = state.codes_data or fingerprint
        if _world() > 1:  # the same codes on every rank (each computed its own)
            torch.distributed.broadcast(state.codes.data, 0)
    recon_per_rank = cfg.g_recon_batch // _world()
    if cfg.g_recon_weight > 0 and recon_per_rank * _world() != cfg.g_recon_batch:
        raise ValueError("g_recon_batch must be divisible by the number of processes")
    while state.cur_nimg < total_kimg * 1000:
        labels = None
        if conditional:
            reals, labels = dataset.sample_labeled(per_rank, generator=state.rng)
            labels = labels.to(device)
        else:
            reals = dataset.sample(per_rank, generator=state.rng)
        reals = reals.to(device)
        if cfg.channels_last:
            reals = reals.contiguous(memory_format=torch.channels_last)
        rebuild = rebuild_labels = None
        if cfg.g_recon_weight > 0:  # pictures to rebuild, drawn alike (not by --balance weights), unflipped
            idx = torch.randint(len(dataset), (recon_per_rank,), generator=state.rng)  # [B']
            rebuild = idx, dataset.batch(idx).to(device)
            if conditional and cfg.g_recon_adv_weight > 0:
                rebuild_labels = torch.from_numpy(dataset.labels)[idx]  # [B']
        losses = train_step(
            state, reals, aug, labels, diversity_targets=targets, rebuild=rebuild, rebuild_labels=rebuild_labels
        )
        state.augment_p = aug.p if cfg.augment == "ada" else state.augment_p
        now, cpu_now = time.monotonic(), time.process_time()
        dt = trained_seconds(now - t_prev, cpu_now - cpu_prev)
        state.seconds += dt
        t_prev, cpu_prev = now, cpu_now
        ckpt = None
        done = state.cur_nimg >= total_kimg * 1000
        due = (now - last_snap_time) >= snapshot_minutes * 60
        if snapshot_kimg is not None:
            due = due or (state.cur_nimg - last_snap_nimg) >= snapshot_kimg * 1000
        if run_dir is not None and (due or done) and _rank() == 0:
            ckpt = save_run_snapshot(state, run_dir, dataset)
            for old in sorted(Path(run_dir).glob("snapshot-*.safetensors"))[:-keep_snapshots]:
                old.unlink()
            if on_snapshot is not None:
                on_snapshot(state, ckpt)
            last_snap_time = time.monotonic()
            last_snap_nimg = state.cur_nimg
            t_prev = last_snap_time
        yield TrainProgress(
            step=state.step,
            kimg=state.cur_nimg / 1000,
            losses=losses,
            augment_p=aug.p,
            seconds=state.seconds,
            checkpoint=ckpt,
            images_per_second=cfg.batch_size / max(dt, 1e-9),
        )


def fixed_grid_z(z_dim: int, n: int, *, seed: int = 123) -> torch.Tensor:
    """The same latents every snapshot, so grids show progress: [n, z_dim]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn([n, z_dim], generator=g)


def init_distributed() -> tuple[int, int, torch.device]:
    """Set up torch.distributed from torchrun's environment: (rank, world size, device)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, torch.distributed.get_world_size(), device


def np_images(img: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    x = (img.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
