"""How much of each kind of training picture a model covers: recall (the share of the data inside the manifold of
the model's samples, k = 3, on a fixed discriminator's features) for all pictures, for emoji drawn once and for
emoji drawn in several variants (skin tones), plus precision (the share of samples inside the data's manifold).

Issue 3: a model that draws persons and flags but not the one-picture objects shows a high recall on the variants
and a low one on the singles; `ganmodels train --balance` is meant to raise the second.

    python scripts/coverage_by_group.py MODEL_OR_SNAPSHOT ... --data fluent-emoji-3d-64.npz \
        --features resources/models/fluent-emoji-64.safetensors [--num 3390] [--seed 0] [--psi 1]

A model is a model file or a training snapshot (its G_ema). Features come from the ``--features`` model's D for
every model, so their numbers compare with each other (not with those of another feature network). Prints one
JSON line per model.
"""

from __future__ import annotations

import argparse
import json

import torch
from blind_grids import load_generator  # (scripts/, the folder of this script, is on the path)

from ganmodels.components import load_discriminator
from ganmodels.dataset import concept_keys, group_sizes, load_images, load_names
from ganmodels.generate import seeds_to_ws, synthesize
from ganmodels.importers import load_any
from ganmodels.metrics import DiscriminatorFeatures, compute_features, manifold_coverage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--features", required=True, help="model file whose discriminator gives the features")
    ap.add_argument("--num", type=int, default=0, help="samples per model (default: as many as the data has)")
    ap.add_argument("--seed", type=int, default=0, help="first seed; the samples use seeds seed .. seed + num - 1")
    ap.add_argument("--psi", type=float, default=1.0, help="truncation")
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    reals = load_images(args.data)  # [N, R, R, 3] uint8
    names = load_names(args.data)
    if names is None:
        raise SystemExit(f"{args.data} keeps no picture names to group by")
    sizes = group_sizes(concept_keys(names))  # [N] pictures of each picture's emoji
    D = load_discriminator(load_any(args.features), device="cpu")
    if D is None:
        raise SystemExit(f"{args.features} has no discriminator")
    extractor = DiscriminatorFeatures(D)
    fr = compute_features(extractor, reals)  # [N, F]
    real_manifold_ok = len(reals) > args.k
    num = args.num or len(reals)
    single, variants = sizes == 1, sizes > 1
    for path in args.models:
        G = load_generator(path)
        seeds = range(args.seed, args.seed + num)
        fakes = torch.cat(
            [
                synthesize(G, seeds_to_ws(G, list(seeds[i : i + 256]), truncation_psi=args.psi))
                for i in range(0, num, 256)
            ]
        )  # [num, 3, R, R]
        ff = compute_features(extractor, fakes)  # [num, F]
        covered = manifold_coverage(ff, fr, k=args.k)  # [N] which real pictures the samples cover
        row = {
            "model": path,
            "samples": num,
            "recall": round(float(covered.mean()), 4),
            "recall_single": round(float(covered[single].mean()), 4),
            "recall_variants": round(float(covered[variants].mean()), 4),
            "singles": int(single.sum()),
            "variants": int(variants.sum()),
        }
        if real_manifold_ok:
            row["precision"] = round(float(manifold_coverage(fr, ff, k=args.k).mean()), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
