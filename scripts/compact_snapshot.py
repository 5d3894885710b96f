"""Write a small resumable copy of a run's newest snapshot (e.g. resources/training/emoji64-snapshot.safetensors).

G, G_ema and D in fp16, Adam's second moments in bf16 (the first moments only when beta1 > 0), the counters, the
run's data options (x-flips, --balance) and, for a conditional run, the class labels of its data, so that
`ganmodels train DATA --resume FILE --out DIR` continues it on another machine even where `dataset cluster` would
number the classes differently.

    python scripts/compact_snapshot.py RUN_DIR OUT.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ganmodels.dataset import load_labels
from ganmodels.training import checkpoint_labels, latest_checkpoint, load_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("out")
    args = ap.parse_args()
    ckpt = latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"no snapshot in {args.run}")
    options = json.loads((Path(args.run) / "training_options.json").read_text())
    state = load_checkpoint(ckpt)
    labels = None
    if state.G.c_dim > 0:  # the labels the run kept with its snapshot, else those of its data file
        labels = checkpoint_labels(ckpt)
        if labels is None:
            labels = load_labels(options["data"])
    if state.G.c_dim > 0 and labels is None:
        raise SystemExit(f"the run is conditional but {options['data']} has no labels")
    out = save_checkpoint(
        state,
        args.out,
        extra={"xflip": bool(options.get("xflip")), "balance": float(options.get("balance") or 0.0)},
        compact=True,
        data_labels=labels,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {ckpt.name}: {state.total_kimg:.1f} kimg")


if __name__ == "__main__":
    main()
