"""Inpainting on held-in domain images with free-form masks (10-40% area): PSNR, SSIM, a perceptual distance
(discriminator features of the model) and ms per image, for every method in one run.

    python bench/inpainting.py --data fluent-emoji-3d-256.npz [--model M] [--images 16] [--size 256] [--steps 100]
        [--subset held-in|held-out|all] [--tune-steps 0 50] [--blend feather poisson]
Goals (issue 5): the GAN methods beat fsr-fast on the domain; gan-inpainter <= 1 s at 256 px.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from ganmodels.components import load_encoder, load_inpainter, load_perceptual
from ganmodels.ganinpainter import holdout_indices
from ganmodels.inpainting import available_methods, create_inpainter
from ganmodels.losses import psnr, ssim
from ganmodels.masks import free_form_mask
from ganmodels.modelfile import load_model
from ganmodels.resources import default_model_path


def to_t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(2, 0, 1)[None].float() * 2 - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=256, help="images are resized to this size")
    ap.add_argument("--steps", type=int, default=100, help="gan-inversion steps")
    ap.add_argument(
        "--tune-steps",
        type=int,
        nargs="*",
        default=[0],
        help="gan-inversion pivotal-tuning steps; several values give a row each (e.g. --tune-steps 0 50)",
    )
    ap.add_argument(
        "--blend",
        nargs="*",
        default=[None],
        choices=["feather", "poisson", "none"],
        help="GAN methods' blending (default: each method's own); several values give a row each",
    )
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--subset",
        default="held-in",
        choices=["held-in", "held-out", "all"],
        help="images the inpainter trained on (held-in) or the ones every --holdout-every-th it never saw",
    )
    ap.add_argument("--holdout-every", type=int, default=20, help="as in train-inpainter")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from ganmodels.dataset import load_images

    model = load_model(args.model or default_model_path())
    perceptual = load_perceptual(model)
    imgs = load_images(args.data)
    rng = np.random.default_rng(0)
    held = holdout_indices(len(imgs), args.holdout_every)
    pool = {
        "held-in": np.setdiff1d(np.arange(len(imgs)), held),
        "held-out": held,
        "all": np.arange(len(imgs)),
    }[args.subset]
    idx = rng.choice(pool, min(args.images, len(pool)), replace=False)
    cases = []
    for i in idx:
        img = imgs[i]
        if img.shape[0] != args.size:
            interp = cv2.INTER_AREA if img.shape[0] > args.size else cv2.INTER_CUBIC
            img = cv2.resize(img, (args.size, args.size), interpolation=interp)
        img = img.astype(np.float32) / 255
        mask = free_form_mask(args.size, args.size, rng=rng, area_range=(0.1, 0.4))
        cases.append((np.clip(img, 0, 1), mask))
    methods = args.methods or available_methods()
    print(
        f"{len(cases)} {args.subset} images at {args.size}px from {args.data} ({imgs.shape[1]}px), "
        f"masks 10-40% area, model {model.name}"
    )
    print(f"{'method':>24} {'PSNR':>7} {'SSIM':>6} {'D-perc':>7} {'ms/img':>8}")
    runs = []
    for name in methods:
        if name == "gan-inversion":
            encoder = load_encoder(model)
            for tune in args.tune_steps:
                for blend in args.blend:
                    kw = dict(G=model.G, num_steps=args.steps, tune_steps=tune, perceptual=perceptual, encoder=encoder)
                    kw.update({"blend": blend} if blend else {})
                    label = name + (f"+pti{tune}" if tune else "") + (f" {blend}" if blend else "")
                    runs.append((label, create_inpainter(name, **kw)))
        elif name == "gan-inpainter":
            net = load_inpainter(model)
            if net is None:
                print(f"{name:>24}   (the model has no trained inpainter)")
                continue
            for blend in args.blend:
                kw = {"blend": blend} if blend else {}
                runs.append((name + (f" {blend}" if blend else ""), create_inpainter(name, net=net, **kw)))
        else:
            runs.append((name, create_inpainter(name)))
    for name, inp in runs:
        ps, ss, pd, times = [], [], [], []
        for img, mask in cases:
            damaged = img.copy()
            damaged[mask > 0] = 0.5
            t = time.perf_counter()
            out = inp(damaged, mask)
            times.append(time.perf_counter() - t)
            a, b = to_t(out), to_t(img)
            ps.append(float(psnr(a, b)))
            ss.append(float(ssim(a, b)))
            if perceptual is not None:
                r = model.G.img_resolution
                with torch.no_grad():
                    pd.append(
                        float(
                            perceptual(
                                torch.nn.functional.interpolate(a, size=(r, r), mode="area"),
                                torch.nn.functional.interpolate(b, size=(r, r), mode="area"),
                            )
                        )
                    )
        print(
            f"{name:>24} {np.mean(ps):7.2f} {np.mean(ss):6.3f} {np.mean(pd) if pd else float('nan'):7.4f} "
            f"{1000 * np.median(times):8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
