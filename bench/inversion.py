"""Inversion quality vs wall time on held-in domain images:
(a) mean-w init optimisation (W+, 500 steps) and (b) encoder + refinement, as PSNR / SSIM curves, plus the
ratio of the time (b) needs to reach (a)'s final PSNR. Also the PSNR reached on the model's own samples.

    python bench/inversion.py [--model M] [--data data.npz] [--images 4] [--steps 500] [--refine 150] [--feature-refine]
Goals (issue 4): (b) reaches (a)'s final PSNR in <= 1/5 of the time; own samples >= 25 dB.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ganmodels.components import load_encoder, load_perceptual
from ganmodels.encoder import invert_with_encoder
from ganmodels.generate import seeds_to_ws
from ganmodels.inversion import image_to_tensor, invert
from ganmodels.losses import ssim
from ganmodels.modelfile import load_model
from ganmodels.resources import default_model_path


def curve(steps, t0: float, target: torch.Tensor) -> list[tuple[float, int, float, float]]:
    """(seconds, step, psnr, ssim) after every step."""
    out = []
    for s in steps:
        dt = time.perf_counter() - t0
        ss = float("nan")
        if s.preview is not None:
            x = torch.from_numpy(s.preview).permute(2, 0, 1)[None] * 2 - 1
            ss = float(ssim(x, target))
        out.append((dt, s.step, s.psnr, ss))
    return out


def time_to_reach(c: list[tuple[float, int, float, float]], psnr: float) -> float | None:
    for dt, _, p, _ in c:
        if p >= psnr:
            return dt
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=None, help="dataset npz of the model's domain (held-in images)")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--refine", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--own", type=int, default=None, help="own samples to invert (default: --images)")
    ap.add_argument(
        "--feature-refine", action="store_true", help="also time (b) refining with (a)'s loss (+ D-feature term)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model or default_model_path())
    G = model.G
    perceptual = load_perceptual(model)
    E = load_encoder(model)
    rng = np.random.default_rng(0)
    targets = []
    if args.data:
        from ganmodels.dataset import load_images

        imgs = load_images(args.data)
        for i in rng.choice(len(imgs), args.images, replace=False):
            targets.append(image_to_tensor(imgs[i], resolution=G.img_resolution))
    print(
        f"model {model.name} ({G.img_resolution}px), perceptual={'D features' if perceptual else 'none'}, "
        f"encoder={'yes' if E else 'no'}, {len(targets)} held-in images"
    )
    variants = {"b": None}  # (b) refines with the pixel loss only, as the editor does
    if args.feature_refine:
        variants["b-features"] = perceptual  # the same loss as (a), with the D-feature term
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    finals: dict[str, list[tuple[float, int, float, float]]] = {"a": [], **{name: [] for name in variants}}

    def plain(tgt: torch.Tensor, seed: int, *, preview_every: int):
        """(a): optimisation from the mean w with the editor's loss (pixel + D features)."""
        return invert(
            G,
            tgt,
            num_steps=args.steps,
            perceptual=perceptual,
            generator=torch.Generator().manual_seed(seed),
            preview_every=preview_every,
        )

    for k, tgt in enumerate(targets):
        t0 = time.perf_counter()
        a = curve(plain(tgt, k, preview_every=50), t0, tgt)
        finals["a"].append(a[-1])
        print(f"image {k}: (a) {args.steps} steps {a[-1][0]:.1f} s -> {a[-1][2]:.2f} dB", flush=True)
        curves = {"a": a}
        for name, loss_net in variants.items() if E is not None else ():
            t0 = time.perf_counter()
            # exactly what the editor and `ganmodels invert --encoder` run (the encoder's guess is timed too)
            steps = invert_with_encoder(
                E,
                G,
                tgt,
                num_steps=args.refine,
                perceptual=loss_net,
                generator=torch.Generator().manual_seed(k),
                preview_every=10,
            )
            b = curves[name] = curve(steps, t0, tgt)
            finals[name].append(b[-1])
            reach = time_to_reach(b, a[-1][2])
            line = f"   ({name}) encoder+{args.refine} steps {b[-1][0]:.1f} s -> {b[-1][2]:.2f} dB"
            if reach is not None:
                ratios[name].append(reach / a[-1][0])
                line += f", reaches (a)'s PSNR after {reach:.1f} s = {reach / a[-1][0]:.2f} of (a)'s time"
            else:
                ratios[name].append(float("inf"))  # counts against the goal
                line += ", does not reach (a)'s PSNR"
            print(line, flush=True)
        for name, c in curves.items():
            pts = [c[i] for i in sorted({0, len(c) // 10, len(c) // 4, len(c) // 2, len(c) - 1})]
            print(f"   curve {name}: " + ", ".join(f"{dt:.1f}s/{p:.1f}dB" for dt, _, p, _ in pts))
    for name, rows in finals.items():
        if rows:
            print(
                f"({name}) mean over {len(rows)} pictures: {np.mean([r[0] for r in rows]):.1f} s, "
                f"PSNR {np.mean([r[2] for r in rows]):.2f} dB, SSIM {np.mean([r[3] for r in rows]):.3f}"
            )
    for name, r in ratios.items():
        if r:
            print(
                f"time ratio ({name})/(a) to reach (a)'s final PSNR: median {np.median(r):.3f} over all {len(r)} "
                f"pictures (inf = not reached; reached on {sum(np.isfinite(r))}) (goal <= 0.2)"
            )
    # own samples
    own = []
    for seed in range(args.own if args.own is not None else args.images):
        with torch.no_grad():
            tgt = G.synthesis(seeds_to_ws(G, [seed], truncation_psi=0.7), noise_mode="const")
        last = list(plain(tgt, seed, preview_every=0))[-1]
        own.append(last.psnr)
    if own:
        print(
            f"own samples (psi 0.7), {args.steps} steps: PSNR "
            + ", ".join(f"{p:.2f}" for p in own)
            + f" dB; mean {np.mean(own):.2f} (goal >= 25)"
        )


if __name__ == "__main__":
    main()
