"""Shuffled, unlabelled sample grids for a blind judgement by a person (issue 3: "recognisable emoji").

One 8 x 8 grid (2x enlarged, nearest neighbour) per model, all from the same seeds and truncation, plus one grid
of random training pictures; the grids are named grid-A.png, grid-B.png ... in a random order and the key (which
letter is which source) is written to a separate file, so that the reviewer sees only the pictures.

    python scripts/blind_grids.py MODEL_OR_SNAPSHOT ... --data fluent-emoji-3d-64.npz --out DIR --key KEY.json

A model is anything ``ganmodels`` opens (a model file, an NVIDIA pickle) or a training snapshot (a run's
``snapshot-*.safetensors`` or a compact one; its G_ema draws). A model file with anchors draws its samples around
them (``ganmodels.anchors``, truncation ``--anchor-psi``), as ``ganmodels sample`` and the editor do. The reviewer
scores each tile 2 (a nameable emoji), 1 (an emoji-like thing of a nameable kind) or 0 (a blob); counts compare only
within one reviewer's pass over one set of grids.
"""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from ganmodels.anchors import DEFAULT_PSI, AnchorBank, anchored_ws
from ganmodels.dataset import load_images
from ganmodels.generate import make_grid, parse_seeds, seeds_to_ws, synthesize, to_uint8
from ganmodels.importers import load_any
from ganmodels.training import load_checkpoint


def load_generator(path: str) -> tuple[torch.nn.Module, AnchorBank | None]:
    """The generator of a model file (with its anchors, if any) or (G_ema of) a training snapshot, eval mode on the
    CPU."""
    if path.endswith(".safetensors"):
        with safe_open(path, framework="pt") as f:
            if (f.metadata() or {}).get("format") == "gan-editor-train/1":
                return load_checkpoint(path).G_ema.eval().requires_grad_(False), None
    model = load_any(path)
    return model.G, model.anchors


def grid_image(images: np.ndarray, *, scale: int = 2) -> Image.Image:
    """uint8 [64, H, W, 3] -> an 8 x 8 grid enlarged ``scale`` times."""
    grid = Image.fromarray(make_grid(images, cols=8, pad=2))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True, help="dataset (.npz or folder) for the grid of training pictures")
    ap.add_argument("--out", required=True, help="folder for the grids (what the reviewer sees)")
    ap.add_argument("--key", required=True, help="JSON file for the key (keep it out of the reviewer's folder)")
    ap.add_argument("--seeds", default="700-763", help="64 seeds")
    ap.add_argument("--psi", type=float, default=0.7, help="truncation")
    ap.add_argument("--anchor-psi", type=float, default=DEFAULT_PSI, help="truncation around anchors")
    ap.add_argument("--shuffle-seed", type=int, default=None, help="order of the grids (default: random)")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    if len(seeds) != 64:
        raise SystemExit(f"--seeds: give 64 seeds, not {len(seeds)}")
    if len(args.models) + 1 > 26:
        raise SystemExit("at most 25 models")
    out, key = Path(args.out), Path(args.key)
    if out.resolve() in key.resolve().parents:
        raise SystemExit("--key must not be inside --out (the reviewer would see it)")
    torch.set_grad_enabled(False)
    sources: list[tuple[str, np.ndarray]] = []
    for path in args.models:
        G, bank = load_generator(path)
        if bank is not None:
            ws, _ = anchored_ws(G, bank, seeds, truncation_psi=args.anchor_psi)  # [64, num_ws, w_dim]
        else:
            ws = seeds_to_ws(G, seeds, truncation_psi=args.psi)  # [64, num_ws, w_dim]
        sources.append((path, to_uint8(synthesize(G, ws))))  # [64, R, R, 3]
    reals = load_images(args.data)  # [N, R, R, 3] uint8
    sizes = {images.shape[1:3] for _, images in sources} | {reals.shape[1:3]}
    if len(sizes) > 1:  # (a grid of another size would give itself away)
        raise SystemExit(f"the models and the data must have one picture size, not {sorted(sizes)}")
    pick = np.random.default_rng(seeds[0]).choice(len(reals), 64, replace=False)
    sources.append((f"training pictures ({args.data})", reals[pick]))
    order = np.random.default_rng(args.shuffle_seed).permutation(len(sources))
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for letter, i in zip(string.ascii_uppercase, order):
        name, images = sources[i]
        grid_image(images).save(out / f"grid-{letter}.png")
        mapping[letter] = name
    key.parent.mkdir(parents=True, exist_ok=True)
    about = {"seeds": args.seeds, "psi": args.psi, "anchor_psi": args.anchor_psi, "grids": mapping}
    key.write_text(json.dumps(about, indent=2) + "\n")
    print(f"wrote {len(mapping)} grids to {out}, key in {key}")


if __name__ == "__main__":
    main()
