"""Generator forward speed: ms per image at 64/128/256 px, channel cap 128 and 512, fp32 vs bf16 autocast vs
channels_last (and both), each as a ratio to fp32 measured in the same run.

    python bench/generator_speed.py [--batch 1] [--reps 5] [--res 64 128 256] [--cmax 128 512]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from ganmodels.device import cpu_has_fast_bf16
from ganmodels.networks import GeneratorConfig


def time_forward(G, ws, *, bf16: bool, reps: int) -> float:
    """Median seconds per synthesis call."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    with torch.no_grad(), ctx:
        G.synthesis(ws, noise_mode="const")  # warm-up
        for _ in range(reps):
            t = time.perf_counter()
            G.synthesis(ws, noise_mode="const")
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--cmax", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, native bf16: {cpu_has_fast_bf16()}")
    header = f"{'res':>5} {'cmax':>5} {'fp32 ms':>9} {'bf16':>7} {'ch_last':>8} {'bf16+cl':>8}"
    print(header + "   (ratios: fp32 time / mode time)")
    for cmax in args.cmax:
        for res in args.res:
            torch.manual_seed(0)
            cfg = GeneratorConfig(img_resolution=res, channel_base=32768, channel_max=cmax, mapping_layers=2)
            G = cfg.build().eval()
            ws = G.mapping(torch.randn(args.batch, G.z_dim), None)
            t32 = time_forward(G, ws, bf16=False, reps=args.reps)
            tbf = time_forward(G, ws, bf16=True, reps=args.reps)
            G = G.to(memory_format=torch.channels_last)
            tcl = time_forward(G, ws, bf16=False, reps=args.reps)
            tbc = time_forward(G, ws, bf16=True, reps=args.reps)
            ms = 1000 * t32 / args.batch
            print(f"{res:>5} {cmax:>5} {ms:>9.1f} {t32 / tbf:>7.2f} {t32 / tcl:>8.2f} {t32 / tbc:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
