"""Build the shipped default model from a training run: export G_ema (fp16) + D, add SeFa directions per layer
group, measure SWD / FID on D features against the training set, write the card, a sample grid and the model
card markdown.

    python scripts/make_default_model.py RUN_DIR DATA.npz [--out resources/models/fluent-emoji-64.safetensors]

RUN_DIR may also be one snapshot file of a run. ``--anchors-from`` carries the anchors (``ganmodels anchors``) of
a model file with the same generator weights over; samples of the grid are then drawn around them, and the card
records the metrics of such samples as well.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganmodels.anchors import DEFAULT_PSI, anchored_ws, generator_fingerprint
from ganmodels.components import discriminator_component, resave_with
from ganmodels.dataset import load_images, load_labels
from ganmodels.directions import describe_directions, layer_groups, sefa
from ganmodels.generate import make_grid, seeds_to_ws, synthesize, to_uint8
from ganmodels.metrics import (
    DiscriminatorFeatures,
    compute_features,
    diversity_ratio,
    fid_from_features,
    intra_class_distance,
    swd,
)
from ganmodels.modelfile import Q8_STORAGE, load_component, load_model, save_model
from ganmodels.networks import random_c
from ganmodels.training import checkpoint_labels, latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--out", default=str(ROOT / "resources/models/fluent-emoji-64.safetensors"))
    ap.add_argument("--num", type=int, default=2000, help="images for the metrics")
    ap.add_argument(
        "--keep-from",
        default=None,
        help="carry the generator-independent inpainter over from this model file (default: the current --out)",
    )
    ap.add_argument(
        "--keep-encoder",
        action="store_true",
        help="also carry that file's encoder over, as the starting point for fine-tuning it to the new generator "
        "(ganmodels train-encoder NEW_MODEL --data DATA ...); for a generator that continues the old one's training",
    )
    ap.add_argument(
        "--anchors-from",
        default=None,
        help="a model file of the same generator (e.g. 'ganmodels export SNAPSHOT --fp16' + 'ganmodels anchors') "
        "whose anchors the new model carries",
    )
    ap.add_argument("--docs", default=str(ROOT / "docs"), help="where the sample grid and MODEL_CARD.md go")
    ap.add_argument(
        "--human-review",
        default=None,
        help="what people said of the samples (scripts/blind_grids.py), written into the card as human_review",
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    ckpt = Path(args.run) if Path(args.run).is_file() else latest_checkpoint(args.run)
    state = load_checkpoint(ckpt)
    G = state.G_ema.eval()
    kimg = round(state.total_kimg, 1)  # including the runs it was initialised from
    hours = round(state.total_seconds / 3600, 2)

    reals = load_images(args.data)
    labels = load_labels(args.data)
    if labels is None:  # the class labels the run trained with, kept in its snapshots
        labels = checkpoint_labels(ckpt)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(reals), min(args.num, len(reals)), replace=False)
    reals = reals[chosen]
    g = torch.Generator().manual_seed(0)
    fakes, fake_c = [], []
    with torch.no_grad():
        for _ in range(len(reals) // 50):
            z, c = torch.randn(50, G.z_dim, generator=g), random_c(G, 50, generator=g)
            fakes.append(to_uint8(G.synthesis(G.mapping(z, c), noise_mode="const")))
            fake_c.append(c)
    fakes = np.concatenate(fakes)
    metrics = {k: round(v, 2) for k, v in swd(reals, fakes, generator=torch.Generator().manual_seed(0)).items()}
    feats = DiscriminatorFeatures(state.D.eval())
    metrics["FID_own_D_features"] = round(
        fid_from_features(compute_features(feats, reals), compute_features(feats, fakes)), 2
    )
    if G.c_dim > 0 and labels is not None:  # generated / real distance between two pictures of one class
        fake_labels = torch.cat(fake_c).argmax(1)
        metrics["diversity_ratio"] = round(
            diversity_ratio(
                intra_class_distance(fakes, fake_labels, G.c_dim), intra_class_distance(reals, labels[chosen], G.c_dim)
            ),
            3,
        )

    gcfg = state.config.G
    chans = [min(gcfg.channel_base // 2**i, gcfg.channel_max) for i in range(2, gcfg.img_resolution.bit_length())]
    card = {
        "name": "Fluent 3D Emoji 64px",
        "description": f"StyleGAN2 (skip G, resnet D, channels {min(chans)}-{max(chans)}) trained from scratch by the "
        "gan-editor project.",
        "training_data": "@lobehub/fluent-emoji-3d 1.1.0 (npm, 3,390 unique images, 256px WebP composited on white, "
        "resized to 64px, random x-flips)",
        "licence": "MIT (weights); training images MIT per the package's package.json",
        "kimg": kimg,
        "hours": hours,
        "hardware": f"2 CPU cores, {state.config.precision}",
        "metrics": metrics,
        "metrics_note": f"{len(reals)} real vs {len(fakes)} generated images, psi 1.0; FID on this model's own D "
        "features is not comparable with Inception FID; diversity_ratio: how different two generated pictures of one "
        "class are, relative to two of the data's (1 = as varied as the data)",
    }
    options = ckpt.parent / "training_options.json"
    balance = json.loads(options.read_text()).get("balance", 0.0) if options.exists() else 0.0
    if balance:  # ganmodels train --balance: emoji drawn in several skin tones weigh less
        card["sampling"] = (
            f"the last part of training drew pictures with --balance {balance}: pictures of one emoji in n skin tones "
            f"or presentations weigh 1 / n^{balance} each"
        )
    if G.c_dim > 0:
        card["classes"] = (
            f"conditional on {G.c_dim} k-means classes of the training pictures (ganmodels dataset cluster "
            f"--k {G.c_dim}); a seed draws a class by its share of the data, or pick one (--class / the GUI); "
            "truncation pulls a sample towards its class's mean w"
        )
    if state.prior_kimg:
        card["kimg_note"] = (
            f"{state.prior_kimg:.1f} kimg in the runs this one continues (ganmodels train --init-from; see "
            f"resources/training/README.md), then {state.cur_nimg / 1000:.1f} kimg in its own"
        )
    if args.human_review:
        card["human_review"] = args.human_review
    directions = {}
    for group, (a, stop) in layer_groups(G.num_ws).items():
        for i, d in enumerate(sefa(G, layers=(a, stop), k=4)):
            name = f"{group} {i + 1}"
            directions[name] = type(d)(
                name=name,
                vector=d.vector,
                layers=d.layers,
                method="sefa",
                description=f"SeFa direction {i + 1} of the {group} layers ({a}-{stop - 1})",
                scale=d.scale,
            )
    # What each does (size, colour, position), measured on samples: the editor shows it on the slider.
    directions = {d.name: d for d in describe_directions(G, list(directions.values()), seeds=16)}
    components = {"discriminator": discriminator_component(state.D, state.config.D)}
    keep = Path(args.keep_from or args.out)
    quantize = []
    if keep.exists():  # the inpainter does not depend on the generator: keep it (the encoder does: see --keep-encoder)
        old = load_model(keep)
        if "inpainter" in old.components:
            components["inpainter"] = load_component(keep, "inpainter")
            card["inpainter"] = old.card.get("inpainter", {})
        if args.keep_encoder and "encoder" in old.components:
            components["encoder"] = load_component(keep, "encoder")
            if old.components["encoder"].get("storage") == Q8_STORAGE:
                quantize.append("encoder")  # stays int8, as it was
            card["encoder"] = dict(old.card.get("encoder", {}))
            if card["encoder"].get("generator") != generator_fingerprint(copy.deepcopy(G).half().float()):  # as stored
                card["encoder"]["note"] = "trained for another generator; fine-tune it with train-encoder"
    with tempfile.TemporaryDirectory() as tmp:
        base = save_model(
            Path(tmp) / "base.safetensors",
            G,
            config=state.config.G,
            card=card,
            components=components,
        )
        model = load_model(base)
        out = resave_with(model, args.out, directions=directions, dtype=torch.float16, quantize=quantize)
    model = load_model(out)
    sample_note = "Samples (seeds 0-31, truncation 0.7)"
    if args.anchors_from:
        source = load_model(args.anchors_from)
        if source.anchors is None:
            raise SystemExit(f"{args.anchors_from} has no anchors")
        if generator_fingerprint(source.G) != generator_fingerprint(model.G):
            raise SystemExit(f"{args.anchors_from} has other generator weights than {ckpt.name} (stored in fp16)")
        card["anchors"] = source.card.get("anchors", {})
        chosen_anchors = rng.choice(len(source.anchors), min(len(fakes), len(source.anchors)), replace=False)
        ws, _ = anchored_ws(model.G, source.anchors, list(range(len(chosen_anchors))), anchors=chosen_anchors.tolist())
        anchored = to_uint8(synthesize(model.G, ws, batch_size=50))
        m = {k: round(v, 2) for k, v in swd(reals, anchored, generator=torch.Generator().manual_seed(0)).items()}
        m["FID_own_D_features"] = round(
            fid_from_features(compute_features(feats, reals), compute_features(feats, anchored)), 2
        )
        card["metrics_anchored"] = m
        card["anchored_sampling"] = (
            f"samples are drawn around anchors: the latents of the {len(source.anchors)} training pictures, fitted "
            "with the generator fixed (ganmodels anchors); a seed picks one and its latent is "
            f"anchor.lerp(mapping(z, c), {DEFAULT_PSI}) by default; metrics_anchored: {len(anchored)} such "
            "samples (distinct anchors). They score worse than plain samples on SWD and D-feature FID (softer: "
            "the anchors draw their pictures at about 24 dB, and D's features reward texture) but far better with "
            "people, who can name them (blind review: resources/training/README.md)"
        )
        model.card = card
        out = resave_with(
            model,
            args.out,
            add={"anchors": load_component(args.anchors_from, "anchors")},
            quantize=["anchors", *quantize],
        )
        model = load_model(out)
        sample_note = f"Samples (seeds 0-31, around their anchors, truncation {DEFAULT_PSI})"
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {ckpt.name}: {kimg} kimg, {hours} h, {metrics}")

    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    if model.anchors is not None:
        ws, _ = anchored_ws(model.G, model.anchors, list(range(32)))
    else:
        ws = seeds_to_ws(model.G, list(range(32)), truncation_psi=0.7)
    grid = make_grid(to_uint8(synthesize(model.G, ws)), cols=8, pad=2)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(docs / "samples.png")
    (docs / "MODEL_CARD.md").write_text(
        "# Default model: "
        + card["name"]
        + "\n\n"
        + card["description"]
        + "\n\n"
        + "\n".join(f"- **{k}**: {v}" for k, v in card.items() if k not in ("name", "description"))
        + f"\n- **directions**: {', '.join(directions)} (SeFa, closed form)\n\n"
        + f"{sample_note}:\n\n![samples](samples.png)\n"
    )
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
