"""Timing / sanity check of ganmodels.metrics: SWD, FID / KID with the built-in extractors, Inception throughput.

Usage: python bench/metrics_check.py [--num 2000] [--res 64] [--inception]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from ganmodels import metrics as M


def smooth_uint8(n: int, res: int, *, generator: torch.Generator) -> np.ndarray:  # [N, res, res, 3] uint8
    """A structured synthetic "dataset": bicubic-upsampled 8x8 noise through tanh."""
    x = torch.tanh(F.interpolate(torch.randn(n, 3, 8, 8, generator=generator), size=(res, res), mode="bicubic"))
    return ((x.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def timed(label: str, fn, *args, **kwargs):  # tiny bench helper
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{label:<48s} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--inception", action="store_true", help="also time the (random-weight) FID Inception")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    reals = smooth_uint8(args.num, args.res, generator=gen)
    fakes = smooth_uint8(args.num, args.res, generator=gen)
    noisy = np.clip(fakes.astype(np.float32) + np.random.default_rng(0).normal(0, 20, fakes.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    print(f"{args.num} images of {args.res}x{args.res}, torch threads: {torch.get_num_threads()}")

    x = M.to_float_images(reals[:64])
    diff = max(float((a - b).abs().max()) for a, b in zip(M.laplacian_pyramid(x, 3), M.laplacian_pyramid_cv2(x, 3)))
    print(f"pyramid torch vs cv2 max abs diff: {diff:.2e}")

    for label, other in [("reals vs reals", reals), ("reals vs fakes", fakes), ("reals vs noisy fakes", noisy)]:
        r = timed(f"SWD {label}", M.swd, reals, other, generator=torch.Generator().manual_seed(1))
        print("    " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))

    ext = M.RandomConvFeatures(0)
    f_real = timed("RandomConvFeatures reals", M.compute_features, ext, reals)
    f_fake = M.compute_features(ext, fakes)
    f_noisy = M.compute_features(ext, noisy)
    for label, f in [("fakes", f_fake), ("noisy fakes", f_noisy)]:
        fid = timed(f"FID (random conv) reals vs {label}", M.fid_from_features, f_real, f)
        kid = timed(
            f"KID (random conv) reals vs {label}",
            M.kid_from_features,
            f_real,
            f,
            generator=np.random.default_rng(0),
        )
        print(f"    FID={fid:.3f}  KIDx1e3={kid * 1e3:.3f}")

    big = torch.randn(4096, 2048, dtype=torch.float64, generator=gen)
    timed("FID of two 2048-d feature sets (N=4096)", M.fid_from_features, big[:2048], big[2048:])

    if args.inception:
        from ganmodels.inception import FIDInceptionV3, InceptionFeatures

        model = FIDInceptionV3().eval()
        timed("Inception (random weights) pool3 on 16 images", M.compute_features, InceptionFeatures(model), reals[:16])


if __name__ == "__main__":
    main()
