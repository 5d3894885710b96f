"""Training throughput (img/s) at 64 px with R1, EMA and DiffAugment on: fp32 vs fp32+channels_last vs
bf16 autocast vs bf16+channels_last, in one run, each as a ratio to fp32; then bf16+channels_last once more with
StyleGAN2's demodulation computed literally from [N, O, I, kh, kw] per-sample weights (as before 2026-12-02)
instead of ``ganmodels.ops.demodulation_coefficients``; last bf16+channels_last with G's reconstruction task on
(``--g-recon``: half a batch rebuilt from learned codes every step), as the img/s shown to D.

    python bench/train_speed.py [--steps 12] [--cbase 2048] [--cmax 128] [--batch 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from ganmodels import ops
from ganmodels.device import cpu_has_fast_bf16
from ganmodels.networks import DiscriminatorConfig, GeneratorConfig
from ganmodels.training import TrainConfig, _Augmenter, attach_codes, new_state, train_step


def images_per_second(cfg: TrainConfig, *, steps: int) -> float:
    state = new_state(cfg)
    aug = _Augmenter(cfg, 0.0)
    res = cfg.G.img_resolution
    g = torch.Generator().manual_seed(0)
    reals = torch.rand([cfg.batch_size, 3, res, res], generator=g) * 2 - 1
    if cfg.channels_last:
        reals = reals.contiguous(memory_format=torch.channels_last)
    rebuild = None
    if cfg.g_recon_weight > 0:  # codes for 64 pictures, the first g_recon_batch of them rebuilt every step
        attach_codes(state, 64)
        n = min(cfg.g_recon_batch, cfg.batch_size)
        rebuild = torch.arange(n), reals[:n].contiguous()
    for _ in range(2):
        train_step(state, reals, aug, rebuild=rebuild)
    state.step = 0  # measure a window that includes exactly one R1 step per r1_interval steps
    t = time.perf_counter()
    for _ in range(steps):
        train_step(state, reals, aug, rebuild=rebuild)
    return steps * cfg.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--cbase", type=int, default=2048)
    ap.add_argument("--cmax", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = GeneratorConfig(img_resolution=args.res, channel_base=args.cbase, channel_max=args.cmax, mapping_layers=2)
    D = DiscriminatorConfig(img_resolution=args.res, channel_base=args.cbase, channel_max=args.cmax)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.res}px, cbase {args.cbase}, cmax {args.cmax}, "
        f"batch {args.batch}, R1 every 16 steps, EMA, DiffAugment; native bf16 on this CPU: {cpu_has_fast_bf16()}"
    )
    base = None
    for precision, cl in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
        cfg = TrainConfig(G=G, D=D, batch_size=args.batch, precision=precision, channels_last=cl, augment="diffaugment")
        ips = images_per_second(cfg, steps=args.steps)
        base = base or ips
        print(f"{precision:>5} channels_last={cl!s:5}: {ips:6.2f} img/s  ratio to fp32 {ips / base:.2f}", flush=True)
    best = ips
    factored = ops.demodulation_coefficients

    def literal(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)  # [N, O, I, kh, kw]
        return (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()

    ops.demodulation_coefficients = literal
    try:
        ips = images_per_second(cfg, steps=args.steps)
    finally:
        ops.demodulation_coefficients = factored
    print(f" bf16 channels_last=True , literal demodulation: {ips:6.2f} img/s; factored is {best / ips:.2f}x faster")
    recon = dataclasses.replace(cfg, g_recon_weight=1.0, g_recon_batch=args.batch // 2)
    ips = images_per_second(recon, steps=args.steps)
    print(
        f" bf16 channels_last=True , + G rebuilding {recon.g_recon_batch} a step: {ips:6.2f} img/s shown to D, "
        f"{ips / best:.2f} of the speed without"
    )


if __name__ == "__main__":
    main()
