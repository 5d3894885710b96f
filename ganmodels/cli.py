"""``ganmodels`` command line: thin wrappers around the library's functions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _default_model() -> Path:
    from ganmodels.resources import default_model_path

    return default_model_path()


def _tqdm(**kwargs):
    from tqdm import tqdm

    return tqdm(**kwargs)


class _StopBetweenSteps:
    """Turns the first Ctrl+C / SIGTERM into a request that a training loop honours between two steps (so its
    last snapshot is exact); a second Ctrl+C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (saving a snapshot); Ctrl+C again to abort", file=sys.stderr)

    def __enter__(self) -> _StopBetweenSteps:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------------------------------------------
# info / sample


def cmd_info(args: argparse.Namespace) -> int:
    from ganmodels.importers import load_any

    model = load_any(args.model or _default_model())  # native files, NVIDIA .pkl, rosinality / DCGAN .pt
    G = model.G
    n_params = sum(p.numel() for p in G.parameters())
    info = {
        "file": str(model.path),
        "name": model.name,
        "resolution": G.img_resolution,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "num_ws": G.num_ws,
        "c_dim": G.c_dim,
        "generator_kind": model.kind,
        "parameters": n_params,
        "config": model.config.to_dict(),
        "card": model.card,
        "directions": {k: d.meta() for k, d in model.directions.items()},
        "components": {k: v.get("kind") for k, v in model.components.items()},
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{model.name}: {G.img_resolution}x{G.img_resolution}, {n_params / 1e6:.2f} M parameters")
        print(f"  file: {model.path}")
        print(f"  {model.kind}: z_dim {G.z_dim}, w_dim {G.w_dim}, num_ws {G.num_ws}, c_dim {G.c_dim}")
        for k in ("training_data", "licence", "kimg", "hours", "metrics"):
            if k in model.card:
                print(f"  {k}: {model.card[k]}")
        if model.directions:
            print(f"  directions: {', '.join(model.directions)}")
        if model.components:
            print(f"  components: {', '.join(model.components)}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from PIL import Image

    from ganmodels.anchors import DEFAULT_PSI, anchored_ws, pick_anchor
    from ganmodels.device import choose_device
    from ganmodels.generate import make_grid, parse_seeds, seeds_to_ws, synthesize, to_uint8
    from ganmodels.importers import load_any

    _check_output(args.out, suffixes=IMAGE_OUT, what="a picture")
    device = choose_device(args.device)
    model = load_any(args.model or _default_model(), device=device)
    seeds = parse_seeds(args.seeds)
    classes = None
    if args.class_index is not None:
        if not 0 <= args.class_index < model.G.c_dim:
            print(
                f"error: --class: {model.name} has {model.G.c_dim} classes, numbered 0 to {model.G.c_dim - 1}"
                if model.G.c_dim
                else f"error: --class: {model.name} is not conditional (it has no classes)",
                file=sys.stderr,
            )
            return 2
        classes = [args.class_index]
    bank = model.anchors if args.anchors else None
    if bank is not None and classes is not None and pick_anchor(0, model.G, bank, class_index=classes[0]) is None:
        print(f"note: no anchors in class {classes[0]}; plain samples", file=sys.stderr)
        bank = None
    psi = args.truncation if args.truncation is not None else (DEFAULT_PSI if bank is not None else 0.7)
    images = []
    for seed in _tqdm(iterable=seeds, desc="sampling", unit="img", disable=args.quiet):
        if bank is not None:  # around a training picture's latent
            pick = pick_anchor(seed, model.G, bank, class_index=None if classes is None else classes[0])
            ws, _ = anchored_ws(model.G, bank, [seed], truncation_psi=psi, anchors=[pick])
        else:
            ws = seeds_to_ws(model.G, [seed], truncation_psi=psi, truncation_cutoff=args.cutoff, classes=classes)
        images.append(to_uint8(synthesize(model.G, ws, noise_mode=args.noise_mode)))
    grid = make_grid(np.concatenate(images), cols=args.cols, pad=args.pad)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    print(f"wrote {out} ({len(seeds)} images, {grid.shape[1]}x{grid.shape[0]})")
    return 0


def _check_output(out: str | Path, *, suffixes: tuple[str, ...], what: str, inputs: Sequence[str | Path] = ()) -> Path:
    """An output path the user gave: it must end in one of ``suffixes`` and must not be one of the ``inputs``
    (a command never writes over what it reads)."""
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path.name}: the output must be {what} ({' or '.join(suffixes)})")
    for src in inputs:
        if src and Path(src).exists() and path.exists() and path.resolve() == Path(src).resolve():
            raise ValueError(f"{path.name} is also the input: choose another output file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name ({' or '.join(suffixes)})")
    return path


IMAGE_OUT = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.importers import convert

    _check_output(args.output, suffixes=(".safetensors",), what="a model file", inputs=[args.input])

    out, notes = convert(args.input, args.output, dtype=torch.float16 if args.fp16 else None)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------------------------------------------
# dataset


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from ganmodels.dataset import BuildReport, build_dataset

    bar = None
    report = None
    for item in build_dataset(args.src, resolution=args.res, out=args.out, xflip=args.xflip, dedup=not args.no_dedup):
        if isinstance(item, BuildReport):
            report = item
            break
        if bar is None and item.total:
            bar = _tqdm(total=item.total, desc="images", unit="img", disable=args.quiet)
        if bar is not None:
            bar.n = item.done
            bar.refresh()
    if bar is not None:
        bar.close()
    assert report is not None
    print(f"wrote {report.out}: {report.count} images at {report.resolution}px, {report.duplicates} duplicates dropped")
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable files:")
        for name, reason in report.skipped:
            print(f"  {name}: {reason}")
    shown = 10
    if report.duplicate_of:
        print("dropped as duplicates (the same picture after resizing):")
        for name, kept in report.duplicate_of[:shown]:
            print(f"  {name} (same as {kept})")
        if len(report.duplicate_of) > shown:
            print(f"  ... and {len(report.duplicate_of) - shown} more")
    if report.not_pictures:
        more = f" and {len(report.not_pictures) - shown} more" if len(report.not_pictures) > shown else ""
        print(f"left out {len(report.not_pictures)} files that are not pictures: "
              f"{', '.join(report.not_pictures[:shown])}{more}")  # fmt: skip
    return 0


def cmd_dataset_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from ganmodels.clusters import cluster_images, refine_clusters
    from ganmodels.dataset import load_images, load_labels, save_labels
    from ganmodels.generate import make_grid

    if args.preview:
        _check_output(args.preview, suffixes=(".png",), what="a PNG picture")
        if not Path(args.preview).absolute().parent.is_dir():
            raise ValueError(f"{Path(args.preview).absolute().parent} does not exist: no place for the preview")
    images = load_images(args.data)
    coarse = 0
    if args.refine:
        old = load_labels(args.data)
        if old is None:
            print(f"error: --refine splits the classes {args.data} has, and it has none", file=sys.stderr)
            return 2
        coarse = int(old.max()) + 1
        if not coarse <= args.k <= len(images):
            print(f"error: --refine needs --k in {coarse}..{len(images)} (classes now..pictures)", file=sys.stderr)
            return 2
        try:
            labels = refine_clusters(images, old, k=args.k, seed=args.seed).labels
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        if not 1 <= args.k <= len(images):
            print(f"error: --k must be in 1..{len(images)} (the number of pictures)", file=sys.stderr)
            return 2
        labels = cluster_images(images, k=args.k, seed=args.seed).labels
    save_labels(args.data, labels)
    sizes = np.bincount(labels, minlength=args.k)
    how = f"split from its {coarse} classes" if args.refine else "k-means"
    print(f"wrote {args.k} class labels ({how}) into {args.data}: {sizes.min()}..{sizes.max()} pictures per class")
    if args.preview:
        from PIL import Image

        cols = 12  # one row per class: its first pictures
        res = images.shape[1]
        rows = []
        for j in range(args.k):
            members = images[labels == j][:cols]
            pad = np.full([cols - len(members), res, res, 3], 255, dtype=np.uint8)
            rows.append(np.concatenate([members, pad]))
        Image.fromarray(make_grid(np.concatenate(rows), cols=cols, pad=2)).save(args.preview)
        print(f"wrote {args.preview} (a row per class)")
    return 0


# --------------------------------------------------------------------------------------------------------------
# train


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.augment import POLICIES
    from ganmodels.clusters import ClassMatch, match_classes
    from ganmodels.dataset import ImageDataset, balance_weights, concept_keys, group_sizes, load_names
    from ganmodels.networks import DiscriminatorConfig, GeneratorConfig
    from ganmodels.training import (
        TrainConfig,
        attach_codes,
        checkpoint_extra,
        checkpoint_labels,
        init_distributed,
        init_from,
        latest_checkpoint,
        load_checkpoint,
        new_state,
        save_run_snapshot,
        train,
    )
    from ganmodels.trainreport import SnapshotReporter

    run_dir = Path(args.out)
    # (before the processes of a torchrun meet: none has written anything yet)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        held = latest_checkpoint(run_dir)
        source = Path(args.resume).absolute() if args.resume else None
        from_here = source is not None and (source == run_dir.absolute() or source.parent == run_dir.absolute())
        if not args.resume:
            raise ValueError(
                f"{run_dir} already holds a training run: continue it with --resume {run_dir}, or choose another --out"
                if held is not None
                else f"{run_dir} is not empty: a new run needs a new (or empty) folder"
            )
        if held is not None and not from_here:  # its snapshots and the resumed run's would be pruned together
            raise ValueError(f"{run_dir} holds another run's snapshots: resume into a new (or empty) folder")
    rank, world, device = init_distributed()
    if args.threads:
        torch.set_num_threads(args.threads)
    xflip = args.xflip
    resume = None
    run_balance = 0.0  # the resumed run's --balance
    if args.resume:  # a run directory (its newest snapshot) or one snapshot file
        src = Path(args.resume)
        resume = src if src.is_file() else latest_checkpoint(src)
        if resume is None:
            print(f"error: no snapshot-*.safetensors in {args.resume}", file=sys.stderr)
            return 2
        # Data options are not part of the training state: keep the run's own.
        opts = (src.parent if src.is_file() else src) / "training_options.json"
        run_opts = json.loads(opts.read_text()) if opts.exists() else {}
        run_opts = {**checkpoint_extra(resume), **run_opts} if isinstance(run_opts, dict) else checkpoint_extra(resume)
        xflip = xflip or bool(run_opts.get("xflip", False))
        run_balance = run_opts.get("balance", 0.0)
        run_balance = float(run_balance) if isinstance(run_balance, (int, float)) else 0.0
    balance = args.balance if args.balance is not None else run_balance
    if resume is not None and args.init_from:
        print("error: --resume continues a run, --init-from starts a new one: give only one", file=sys.stderr)
        return 2
    if args.augment_p is not None and not (args.augment == "ada" and resume is None and 0 <= args.augment_p <= 1):
        print("error: --augment-p (0..1) starts the ADA probability of a new run (--augment ada)", file=sys.stderr)
        return 2
    dataset = ImageDataset.from_path(args.data, xflip=xflip)
    if balance > 0:
        names = load_names(args.data)
        if names is None:
            print(f"error: --balance groups pictures by their file names; {args.data} keeps none", file=sys.stderr)
            return 2
        keys = concept_keys(names)
        dataset = ImageDataset(
            dataset.images, labels=dataset.labels, xflip=xflip, weights=balance_weights(keys, power=balance)
        )
        if rank == 0:
            largest = int(group_sizes(keys).max())
            print(
                f"--balance {balance:g}: {len(dataset)} pictures in {len(set(keys))} groups of one emoji (named "
                f"alike); a group of {largest} is drawn {largest ** (1 - balance):.2g}x as often as a one-picture "
                f"group ({largest}x without --balance)"
            )
    if resume is not None:  # a conditional run's snapshot may carry the labels it was trained with
        stored = checkpoint_labels(resume)
        if stored is not None and not np.array_equal(stored, dataset.labels):
            if len(stored) != len(dataset):
                print(
                    f"error: {resume.name} holds class labels for {len(stored)} pictures; {args.data} has "
                    f"{len(dataset)}",
                    file=sys.stderr,
                )
                return 2
            dataset = ImageDataset(dataset.images, labels=stored, xflip=xflip, weights=dataset.weights)
            print(f"using the class labels stored in {resume.name}")
    if args.cond and dataset.num_classes == 0:
        print(
            f"error: --cond needs class labels in {args.data}; add some with: "
            f"ganmodels dataset cluster {args.data} --k 32",
            file=sys.stderr,
        )
        return 2
    run_dir = Path(args.out)
    if resume is not None:
        state = load_checkpoint(resume, device=device, channels_last=args.channels_last)
        if state.config.G.img_resolution != dataset.resolution:
            raise ValueError(
                f"{resume.name} is a {state.config.G.img_resolution} px run; {args.data} holds "
                f"{dataset.resolution} px pictures"
            )
        if rank == 0:
            print(f"resumed {resume} at {state.cur_nimg / 1000:.3f} kimg, step {state.step}")
        if state.cur_nimg >= args.kimg * 1000:
            raise ValueError(
                f"the run is at {state.cur_nimg / 1000:.3f} kimg already: give a --kimg above that to train on"
            )
        changes = {
            "augment_policy": args.augment_policy,
            "diversity_weight": args.diversity,
            "d_recon_weight": args.d_recon,
            "g_recon_weight": args.g_recon,
            "g_recon_code_lr": args.g_recon_code_lr,
            "g_recon_batch": args.g_recon_batch,
            "g_recon_adv_weight": args.g_recon_adv,
            "g_lr": args.lr,
            "d_lr": args.lr,
            "ema_kimg": args.ema_kimg,
            "r1_gamma": args.gamma,
        }
        fixed = [
            f"--{dest.replace('_', '-')}"
            for dest in _RUN_FIXED_OPTIONS
            if getattr(args, dest, None) != _train_default(dest)
        ]
        if fixed and rank == 0:
            print(f"note: {', '.join(fixed)} ignored: a resumed run keeps what it started with")
        changes = {k: v for k, v in changes.items() if v is not None and v != getattr(state.config, k)}
        if changes:  # options a run may change as it goes (the snapshot records the new ones)
            try:
                state.config = dataclasses.replace(state.config, **changes)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            if rank == 0:
                print("changed " + ", ".join(f"{k} to {v}" for k, v in changes.items()))
        if balance != run_balance:
            if state.G.c_dim > 0:  # draw the fakes' classes as often as the reals' are drawn now
                freq = dataset.class_frequencies()  # [num_classes <= c_dim]
                probs = torch.zeros(state.G.c_dim, dtype=torch.float32, device=device)
                probs[: len(freq)] = torch.as_tensor(freq, dtype=torch.float32)
                for G in (state.G, state.G_ema):
                    G.mapping.c_probs.copy_(probs)
            if rank == 0:
                print(f"changed balance to {balance:g}")
    else:
        from ganmodels.device import training_precision

        precision = training_precision(args.precision, device)
        res = dataset.resolution
        lr = args.lr if args.lr is not None else 0.0025
        try:
            cfg = TrainConfig(
                G=GeneratorConfig(
                    img_resolution=res,
                    z_dim=args.z_dim,
                    w_dim=args.w_dim,
                    c_dim=dataset.num_classes if args.cond else 0,
                    mapping_layers=args.map,
                    channel_base=args.cbase,
                    channel_max=args.cmax,
                    use_noise=not args.no_noise,
                ),
                D=DiscriminatorConfig(
                    img_resolution=res,
                    channel_base=args.cbase,
                    channel_max=args.cmax,
                    c_dim=dataset.num_classes if args.cond else 0,
                    spectral_norm=args.spectral_norm,
                    mbstd_group_size=min(4, args.batch // max(world, 1)),
                ),
                batch_size=args.batch,
                g_lr=lr,
                d_lr=lr,
                loss=args.loss,
                r1_gamma=args.gamma if args.gamma is not None else 0.0002 * res**2 / args.batch,
                pl_weight=args.pl_weight,
                ema_kimg=args.ema_kimg if args.ema_kimg is not None else args.batch * 10 / 32,
                augment=args.augment,
                augment_policy=args.augment_policy or POLICIES,
                diversity_weight=args.diversity or 0.0,
                d_recon_weight=args.d_recon or 0.0,
                g_recon_weight=args.g_recon or 0.0,
                **({} if args.g_recon_code_lr is None else {"g_recon_code_lr": args.g_recon_code_lr}),
                **({} if args.g_recon_batch is None else {"g_recon_batch": args.g_recon_batch}),
                g_recon_adv_weight=args.g_recon_adv or 0.0,
                ada_target=args.ada_target,
                precision=precision,
                channels_last=args.channels_last is not False,
                seed=args.seed,
            )
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        state = new_state(cfg, device=device)
        if args.init_from:
            old_labels = checkpoint_labels(args.init_from) if args.cond else None
            known = old_labels is not None and len(old_labels) == len(dataset)  # labels of these pictures
            match = (
                match_classes(old_labels, dataset.labels, num_new=dataset.num_classes)
                if known
                else ClassMatch(None, 0.0)
            )
            try:
                report = init_from(state, args.init_from, class_map=match.class_map)
            except ValueError as e:
                print(f"error: --init-from: {e}", file=sys.stderr)
                return 2
            if rank == 0:
                print(f"initialised from {args.init_from}: {report.summary()}")
                name = Path(args.init_from).name
                if report.classes_mapped:
                    print(
                        f"each class starts as the class of {name} most of its pictures had "
                        f"({100 * match.agreement:.0f} % of the pictures keep their old class)"
                    )
                elif "mapping.embed.weight" in report.adapted["G"] or (known and match.rejected):
                    why = (
                        f"{name} keeps no labels of these {len(dataset)} pictures"
                        if not known
                        else f"only {100 * match.agreement:.0f} % of the pictures would keep their old class"
                    )
                    print(
                        f"warning: the classes could not be matched to {name}'s ({why}): class k starts as its "
                        "class k (any further ones as the bias alone)",
                        file=sys.stderr,
                    )
        if args.cond:  # sample classes as often as the data has them (not as the --init-from source did)
            probs = torch.as_tensor(dataset.class_frequencies(), dtype=torch.float32, device=device)
            for G in (state.G, state.G_ema):
                G.mapping.c_probs.copy_(probs)
        if args.augment_p is not None:
            state.augment_p = args.augment_p
    reporter = (
        SnapshotReporter(run_dir, dataset=dataset, data_name=str(args.data), xflip=xflip, balance=balance)
        if rank == 0
        else None
    )
    recon_options = [
        f"--{dest.replace('_', '-')}"
        for dest in ("g_recon_batch", "g_recon_code_lr", "g_recon_adv")
        if getattr(args, dest) is not None
    ]
    if recon_options and state.config.g_recon_weight <= 0:
        print(f"error: {', '.join(recon_options)} tune --g-recon: give a --g-recon weight too", file=sys.stderr)
        return 2
    if args.g_recon_init:
        if state.config.g_recon_weight <= 0:
            print("error: --g-recon-init starts the codes of --g-recon: give a --g-recon weight too", file=sys.stderr)
            return 2
        if state.codes is not None:
            if rank == 0:
                print("note: --g-recon-init ignored: the run has its codes already", file=sys.stderr)
        else:
            init = _encoder_codes(args.g_recon_init, state, dataset)
            if init is None:
                return 2
            attach_codes(state, len(dataset), init=init.to(device))
            if rank == 0:
                print(f"codes of G's rebuilding start from the encoder of {Path(args.g_recon_init).name}")
    if reporter is not None:
        reporter.write_config(state)
    bar = _tqdm(  # counted in whole images (kimg fractions drifted: 0.036000000000000004/0.064)
        total=round(args.kimg * 1000),
        initial=state.cur_nimg,
        unit="img",
        unit_scale=True,
        disable=args.quiet or rank != 0,
    )
    last = state.cur_nimg
    with _StopBetweenSteps() as stop:
        for prog in train(
            state,
            dataset,
            total_kimg=args.kimg,
            run_dir=run_dir,
            snapshot_minutes=args.snap_minutes,
            snapshot_kimg=args.snap_kimg,
            on_snapshot=reporter,
        ):
            if reporter is not None:
                reporter.log(prog)
            bar.update(state.cur_nimg - last)
            last = state.cur_nimg
            bar.set_postfix(
                G=f"{prog.losses['G']:.3f}", D=f"{prog.losses['D']:.3f}", p=f"{prog.augment_p:.2f}", refresh=False
            )
            if stop.requested:  # (with several processes each rank stops; rank 0 saves)
                if prog.checkpoint is None and reporter is not None:
                    reporter(state, save_run_snapshot(state, run_dir, dataset))
                q = shlex.quote
                print(
                    f"stopped at {state.cur_nimg / 1000:.1f} kimg; continue with: ganmodels train {q(str(args.data))} "
                    f"--out {q(str(run_dir))} --resume {q(str(run_dir))} --kimg {args.kimg:g} (and the same --threads"
                    " or torchrun options)",
                    file=sys.stderr,
                )
                break
    bar.close()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


def _encoder_codes(path: str, state: Any, dataset: Any) -> Any:
    """--g-recon-init: the encoder of the model file at ``path`` guesses every picture's code ([N, w_dim]), or None
    after printing why it cannot."""
    from ganmodels.components import load_encoder
    from ganmodels.modelfile import load_model
    from ganmodels.training import encoder_codes

    model = load_model(path)
    encoder = load_encoder(model)
    if encoder is None:
        print(f"error: {Path(path).name} has no encoder to start the codes from", file=sys.stderr)
        return None
    cfg = encoder.config
    if (cfg.img_resolution, cfg.w_dim) != (dataset.resolution, state.G.w_dim):
        print(
            f"error: the encoder of {Path(path).name} reads {cfg.img_resolution} px pictures into {cfg.w_dim}-value "
            f"codes; this run has {dataset.resolution} px pictures and {state.G.w_dim}-value codes",
            file=sys.stderr,
        )
        return None
    return encoder_codes(encoder, dataset)


# --------------------------------------------------------------------------------------------------------------
# export / invert / edit / directions / train-encoder


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.components import discriminator_component
    from ganmodels.modelfile import save_model
    from ganmodels.training import latest_checkpoint, load_checkpoint

    _check_output(args.out, suffixes=(".safetensors",), what="a model file", inputs=[args.run])
    ckpt = Path(args.run)
    if ckpt.is_dir():
        found = latest_checkpoint(ckpt)
        if found is None:
            raise FileNotFoundError(f"no snapshot-*.safetensors in {ckpt}")
        ckpt = found
    state = load_checkpoint(ckpt)
    card = json.loads(Path(args.card).read_text()) if args.card else {}
    card.setdefault("kimg", round(state.cur_nimg / 1000, 3))
    card.setdefault("hours", round(state.seconds / 3600, 2))
    comps = {"discriminator": discriminator_component(state.D, state.config.D)}
    out = save_model(
        args.out,
        state.G_ema,
        config=state.config.G,
        card=card,
        components=comps,
        dtype=torch.float16 if args.fp16 else None,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {ckpt.name}, {card['kimg']} kimg")
    return 0


def cmd_anchors(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    import torch

    from ganmodels.anchors import AnchorBank, as_stored, bank_psnr, fit_anchors, generator_fingerprint
    from ganmodels.components import resave_with
    from ganmodels.dataset import load_images, load_labels, load_names, one_per_concept
    from ganmodels.training import checkpoint_labels, data_fingerprint, load_checkpoint

    source = args.model or str(_default_model())
    _check_output(args.out, suffixes=(".safetensors",), what="a model file", inputs=[source])
    _native_model(source, "anchors (it writes the anchors into a model file)")
    model, _ = _load(args)
    G = model.G
    images = load_images(args.data)  # [N, R, R, 3] uint8
    keep = np.arange(len(images))  # the anchors the file gets
    if args.one_per_concept:
        names = load_names(args.data)
        if names is None:
            raise ValueError(f"{args.data} does not record its pictures' file names (--one-per-concept needs them)")
        keep = one_per_concept(names)
    if images.shape[1] != G.img_resolution:
        raise ValueError(f"{args.data} holds {images.shape[1]} px pictures; {model.name} draws {G.img_resolution} px")
    about = {"generator": generator_fingerprint(G), "data": data_fingerprint(SimpleNamespace(images=images))}
    carried = (  # the model carries anchors of all these pictures already
        model.anchors is not None
        and len(model.anchors) == len(images)
        and dict(model.card.get("anchors") or {}).get("data") == about["data"]
    )
    labels = load_labels(args.data)
    if labels is None and args.init_snapshot:  # the labels the run trained with, kept in its snapshots
        labels = checkpoint_labels(args.init_snapshot)
    if labels is None and carried:  # ... and their labels
        labels = model.anchors.labels.numpy()
    if G.c_dim > 0 and (labels is None or len(labels) != len(images)):
        raise ValueError(
            f"{model.name} is conditional: the data needs its class labels (see 'dataset cluster'), or give the "
            "run's --init-snapshot, which keeps them"
        )
    partial = Path(args.out).with_name(Path(args.out).name + ".partial")
    bank = None
    own = carried and (G.c_dim == 0 or torch.equal(model.anchors.labels, torch.as_tensor(labels, dtype=torch.long)))
    steps_before, steps_now = 0, args.steps  # (the Adam steps the anchors had had, and those of this fit)
    carried_steps = int(dict(model.card.get("anchors") or {}).get("steps", 0))  # (those of the model's anchors)
    if args.more and not own:
        raise ValueError(f"--more needs a model that carries anchors of all these pictures; {model.name} does not")
    if partial.exists():
        bank, found = AnchorBank.load(partial)
        if {k: found.get(k) for k in about} != about:
            raise ValueError(f"{partial} belongs to another model or data; delete it to start again")
        steps_before = int(found.get("steps_before", "0"))
        print(f"resumed {partial}: {int(bank.fitted.sum())} of {len(bank)} anchors fitted", file=sys.stderr)
    elif own and args.more:  # fit them further: those the file keeps
        bank = model.anchors.subset(range(len(model.anchors)))  # (a copy)
        bank.fitted[keep] = False
        steps_before = carried_steps
        print(f"fitting {len(keep)} of {model.name}'s anchors {args.steps} steps more", file=sys.stderr)
    elif own:  # store them again (e.g. --compact)
        bank = model.anchors
        steps_before, steps_now = carried_steps, 0
        print(f"{model.name} has anchors of all {len(bank)} pictures: storing them again", file=sys.stderr)
    else:
        bank = AnchorBank.start(G, labels if labels is not None else np.zeros(len(images)), rows=args.rows)
        if args.init_snapshot:  # a --g-recon run's codes of these pictures: a much better start than class means
            state = load_checkpoint(args.init_snapshot)
            if state.codes is None or state.codes_data not in ("", about["data"]):
                raise ValueError(f"{args.init_snapshot} has no --g-recon codes of these pictures")
            if tuple(state.codes.shape) != (len(images), G.w_dim):
                raise ValueError(f"{args.init_snapshot}: codes of shape {list(state.codes.shape)} for these pictures")
            bank.ws[:] = state.codes.detach().float()[:, None]
    steps = fit_anchors(G, images, bank, steps=args.steps, lr=args.lr, batch=args.batch)
    bar = _tqdm(total=len(bank), initial=int(bank.fitted.sum()), desc="anchors", unit="img", disable=args.quiet)
    last_save = time.monotonic()
    with _StopBetweenSteps() as stop:
        for s in steps:
            bar.update(s.done - bar.n)
            bar.set_postfix(psnr=f"{s.psnr:.2f}", refresh=False)
            if time.monotonic() - last_save > 60 * args.snap_minutes:
                bank.save(partial, about={**about, "steps_before": str(steps_before)})
                last_save = time.monotonic()
            if stop.requested:
                break
    bar.close()
    bank.save(partial, about={**about, "steps_before": str(steps_before)})  # (kept until the model is written)
    if not bool(bank.fitted.all()):
        print(f"stopped with {int(bank.fitted.sum())} of {len(bank)} anchors; continue with the same command")
        return 0
    shipped = bank.subset(keep)
    component = shipped.to_component(compact=args.compact)
    stored = float(bank_psnr(G, as_stored(component), images[keep]).mean())  # what the file gives back
    card = dict(model.card)
    card["anchors"] = {
        "count": len(shipped),
        "pictures": len(bank),
        "selection": "one per emoji (skin tones and presentations merged)" if args.one_per_concept else "all",
        "data": about["data"],  # (SHA-256 of the pictures: the anchors are theirs, by index)
        "rows": bank.rows,
        "storage": "mean row int8 + 4-bit offsets" if args.compact else "int8 rows",
        "steps": steps_before + steps_now,
        "fitted_psnr_db": round(float(shipped.psnr.mean()), 2),
        "mean_psnr_db": round(stored, 2),
    }
    out = resave_with(model, args.out, add={"anchors": component}, card=card, quantize=["anchors"])
    partial.unlink(missing_ok=True)
    mean = card["anchors"]["mean_psnr_db"]
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(shipped)} anchors drawing their pictures at {mean} dB"
    )
    return 0


def _load(args: argparse.Namespace):
    from ganmodels.device import choose_device
    from ganmodels.importers import load_any

    device = choose_device(args.device)
    model = load_any(args.model or _default_model(), device=device)
    for note in getattr(model, "notes", []):
        print(f"note: {note}", file=sys.stderr)
    return model, device


def _read_image(path: str):
    from ganmodels.imageio import load_image_rgb

    return load_image_rgb(path)


def cmd_invert(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ganmodels.components import load_encoder, load_perceptual
    from ganmodels.encoder import invert_with_encoder
    from ganmodels.generate import to_uint8
    from ganmodels.imageio import load_mask
    from ganmodels.inversion import invert, pivotal_tuning, render
    from ganmodels.latents import save_latent

    _check_output(args.out, suffixes=(".npz",), what="a latent file")
    if args.png:
        _check_output(args.png, suffixes=IMAGE_OUT, what="a picture", inputs=[args.image])
    model, device = _load(args)
    image = _read_image(args.image)
    mask = load_mask(args.mask, size=image.shape[:2]) if args.mask else None
    encoder = load_encoder(model, device=device) if args.encoder else None
    if args.encoder and encoder is None:
        raise ValueError(f"{model.name} has no encoder: train one with 'ganmodels train-encoder'")
    # D features for plain optimisation and PTI; the refinement after the encoder's guess uses the pixel loss
    wants_features = not args.no_perceptual and (encoder is None or args.pti)
    perceptual = load_perceptual(model, device=device) if wants_features else None
    g = torch.Generator(device=device).manual_seed(args.seed)
    common = dict(mask=mask, ms_ssim_weight=args.ms_ssim, generator=g)
    if encoder is not None:
        steps = invert_with_encoder(encoder, model.G, image, num_steps=args.steps, **common)
    else:
        steps = invert(model.G, image, space=args.space, num_steps=args.steps, perceptual=perceptual, **common)
    bar = _tqdm(total=args.steps, desc="inverting", unit="step", disable=args.quiet)
    last = None
    for last in steps:
        bar.update(1)
        bar.set_postfix(psnr=f"{last.psnr:.2f}", loss=f"{last.loss:.4f}", refresh=False)
    bar.close()
    assert last is not None
    weights = None
    if args.pti:
        tune = pivotal_tuning(
            model.G, last.ws, image, mask=mask, noise=last.noise, num_steps=args.pti, perceptual=perceptual, generator=g
        )
        for t in _tqdm(iterable=tune, total=args.pti, desc="pivotal tuning", unit="step", disable=args.quiet):
            weights = t.weights
    info = {
        "model": model.name,
        "model_file": str(Path(model.path).resolve()) if model.path else None,
        "psnr": last.psnr,
        "space": args.space,
        "steps": args.steps,
        "source": str(args.image),
    }
    save_latent(args.out, last.ws, noise=last.noise, info=info)
    print(f"wrote {args.out}: PSNR {last.psnr:.2f} dB on known pixels")
    if args.png:
        img = render(model.G, last.ws, noise=last.noise, weights=weights)
        Image.fromarray(to_uint8(img)[0]).save(args.png)
        print(f"wrote {args.png}")
    if weights:
        from ganmodels.stio import save_safetensors

        p = Path(args.out).with_suffix(".pti.safetensors")
        save_safetensors(p, weights, {"format": "gan-editor-pti/1", "model": model.name})
        print(f"wrote {p} (tuned synthesis weights)")
    return 0


def _resolve_direction(spec: str, model, extra: dict):
    """'sefa:3=2.0', 'pca:1@0-4=-1', 'smile=1.5' -> (Direction, strength)."""
    from ganmodels.directions import ganspace, sefa

    if "=" not in spec:
        raise ValueError(f"direction {spec!r} must look like NAME=STRENGTH, e.g. sefa:3=2.0")
    name, strength = spec.rsplit("=", 1)
    layers = None
    try:
        float(strength)
        if "@" in name:
            name, rng = name.split("@", 1)
            a, b = rng.split("-", 1)
            layers = (int(a), int(b) + 1)
    except ValueError:
        raise ValueError(f"direction {spec!r} must look like NAME=STRENGTH, e.g. sefa:3=2 or pca:1@0-3=-1.5") from None
    if ":" in name:
        method, idx = name.split(":", 1)
        if not idx.isdigit() or int(idx) >= model.w_dim:
            raise ValueError(f"direction index {idx!r} must be a number from 0 to {model.w_dim - 1}")
        k = int(idx) + 1
        if method == "sefa":
            d = sefa(model.G, layers=layers, k=k)[k - 1]
        elif method in ("pca", "ganspace"):
            import torch

            d = ganspace(model.G, layers=layers, k=k, generator=torch.Generator().manual_seed(0))[k - 1]
        else:
            raise ValueError(f"unknown direction method {method!r} (sefa or ganspace)")
        return d, float(strength)
    pool = {**model.directions, **extra}
    if name not in pool:
        raise ValueError(f"unknown direction {name!r}; this model has: {', '.join(pool) or 'none'}")
    d = pool[name]
    if layers is not None:
        import dataclasses

        d = dataclasses.replace(d, layers=layers)
    return d, float(strength)


def cmd_edit(args: argparse.Namespace) -> int:
    from PIL import Image

    from ganmodels.directions import load_directions
    from ganmodels.generate import to_uint8
    from ganmodels.inversion import render
    from ganmodels.latents import load_latent

    _check_output(args.out, suffixes=IMAGE_OUT, what="a picture")
    ws, noise, info = load_latent(args.latent)
    made_with = info.get("model_file") if isinstance(info, dict) else None
    if args.model is None and made_with and Path(made_with).is_file():
        args.model = made_with  # the model that made the latent, when it is still there
    model, device = _load(args)
    if made_with and model.path is not None and Path(made_with).resolve() != Path(model.path).resolve():
        print(f"note: {Path(args.latent).name} was made with {Path(made_with).name}; rendering with {model.path.name}")
    if noise is not None and not _noise_fits(model.G, noise):
        print("note: the latent's noise maps do not fit this model; rendering without them")
        noise = None
    if ws.shape[1:] != (model.num_ws, model.w_dim):
        raise ValueError(
            f"latent shape {list(ws.shape)} does not fit {model.name} ([1, {model.num_ws}, {model.w_dim}])"
        )
    extra = load_directions(args.directions) if args.directions else {}
    ws = ws.to(device)
    for spec in args.direction or []:
        d, strength = _resolve_direction(spec, model, extra)
        ws = d.apply(ws, strength)
    if noise is not None:
        noise = {k: v.to(device) for k, v in noise.items()}
    img = render(model.G, ws, noise=noise)
    Image.fromarray(to_uint8(img)[0]).save(args.out)
    print(f"wrote {args.out}")
    return 0


def _noise_fits(G, noise: dict) -> bool:
    """Whether a latent file's noise maps are those of G's noise layers (same names and sizes)."""
    from ganmodels.inversion import noise_layers

    layers = noise_layers(G)
    if set(noise) != set(layers):
        return False
    return all(tuple(v.shape) == tuple(layers[n].noise_const.shape) for n, v in noise.items())


def cmd_directions(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.components import resave_with
    from ganmodels.directions import describe_directions, ganspace, save_directions, sefa

    if args.into_model:
        _native_model(args.model or str(_default_model()), "--into-model (it copies the model file)")
        _check_output(args.into_model, suffixes=(".safetensors",), what="a model file")
    if args.out:
        _check_output(args.out, suffixes=(".safetensors",), what="a direction file")
    model, _ = _load(args)
    layers = None
    if args.layers:
        a, b = args.layers.split("-", 1)
        layers = (int(a), int(b) + 1)
    if args.method == "sefa":
        dirs = sefa(model.G, layers=layers, k=args.k)
    else:
        dirs = ganspace(model.G, layers=layers, k=args.k, generator=torch.Generator().manual_seed(args.seed))
    if args.describe:
        dirs = describe_directions(model.G, dirs, seeds=max(args.describe, 2))
    for d in dirs:
        print(f"{d.name:>8}  layers {d.layers[0]}-{d.layers[1] - 1}  scale {d.scale:.3f}  {d.description}")
    if args.out:
        save_directions(args.out, dirs)
        print(f"wrote {args.out}")
    if args.into_model:
        merged = {**model.directions, **{d.name: d for d in dirs}}
        resave_with(model, args.into_model, directions=merged)
        print(f"wrote {args.into_model} with {len(merged)} directions")
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    from ganmodels.imageio import load_image_rgb, load_mask, save_png
    from ganmodels.inpainting import create_inpainter

    _check_output(args.out, suffixes=(".png",), what="a PNG picture", inputs=[args.image, args.mask])
    image = load_image_rgb(args.image)
    mask = load_mask(args.mask, size=image.shape[:2])
    kwargs = {}
    if args.method.startswith("gan"):
        from ganmodels.components import load_encoder, load_inpainter, load_perceptual

        model, device = _load(args)
        if args.method == "gan-inpainter":
            kwargs = dict(net=load_inpainter(model, device=device))
        else:
            kwargs = dict(
                G=model.G,
                num_steps=args.steps,
                tune_steps=args.tune_steps,
                seed=args.seed,
                perceptual=load_perceptual(model, device=device),
                encoder=load_encoder(model, device=device),
            )
        if args.blend is not None:
            kwargs["blend"] = args.blend
    inpainter = create_inpainter(args.method, **kwargs)
    bar = None
    result = None
    for step in inpainter.run(image, mask):
        if bar is None:
            bar = _tqdm(total=step.num_steps, desc=args.method, unit="step", disable=args.quiet)
        bar.n = step.step
        bar.refresh()
        result = step.result if step.result is not None else result
    if bar is not None:
        bar.close()
    save_png(args.out, result, text={"gan-editor:inpaint-method": args.method})
    print(f"wrote {args.out}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.dataset import load_images, load_labels
    from ganmodels.generate import to_uint8
    from ganmodels.metrics import (
        DiscriminatorFeatures,
        compute_features,
        diversity_ratio,
        fid_from_features,
        intra_class_distance,
        kid_from_features,
        precision_recall,
        swd,
    )
    from ganmodels.networks import random_c

    model, device = _load(args)
    reals = load_images(args.data)
    real_labels = load_labels(args.data)
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(reals), min(args.num, len(reals)), replace=False)
    reals = reals[chosen]
    g = torch.Generator(device=device).manual_seed(args.seed)
    fakes, fake_labels = [], []
    with torch.no_grad():
        for i in range(0, args.num, 50):
            n = min(50, args.num - i)
            z = torch.randn([n, model.G.z_dim], generator=g, device=device)
            c = random_c(model.G, n, generator=g)  # [n, c_dim]
            ws = model.G.mapping(z, c, truncation_psi=args.truncation)
            fakes.append(to_uint8(model.G.synthesis(ws, noise_mode="const")))
            fake_labels.append(c.argmax(1).cpu() if c.shape[1] else torch.zeros(n, dtype=torch.long))
    fakes = np.concatenate(fakes)
    if fakes.shape[1] != reals.shape[1]:
        raise ValueError(f"the data is {reals.shape[1]}px but the model makes {fakes.shape[1]}px images")
    result = {k: round(v, 3) for k, v in swd(reals, fakes, generator=torch.Generator().manual_seed(args.seed)).items()}
    # Diversity within each class (one class for an unconditional G or unlabelled data): generated / real.
    if model.G.c_dim > 0 and real_labels is not None and int(real_labels.max()) < model.G.c_dim:
        classes, real_labels = model.G.c_dim, real_labels[chosen]
        fake_labels = torch.cat(fake_labels)
    else:
        classes, real_labels, fake_labels = 1, np.zeros(len(reals), np.int64), np.zeros(len(fakes), np.int64)
    try:
        result["diversity_ratio"] = round(
            diversity_ratio(
                intra_class_distance(fakes, fake_labels, classes), intra_class_distance(reals, real_labels, classes)
            ),
            3,
        )
    except ValueError as e:  # too few pictures per class: the other metrics still count
        print(f"note: diversity_ratio left out ({e}; a larger --num helps)", file=sys.stderr)
    if args.inception:
        from ganmodels.inception import InceptionFeatures, load_fid_inception

        extractor = InceptionFeatures(load_fid_inception(args.inception, device=device))
    else:
        from ganmodels.components import load_discriminator
        from ganmodels.importers import load_any

        source = load_any(args.features, device=device) if args.features else model
        D = load_discriminator(source, device=device)
        if D is None and args.features:
            print(f"error: --features: {args.features} has no discriminator", file=sys.stderr)
            return 2
        extractor = DiscriminatorFeatures(D) if D is not None else None
    if extractor is None:
        print("note: FID / KID / precision / recall left out: the model has no discriminator to take features from "
              "(give --features MODEL or --inception WEIGHTS)", file=sys.stderr)  # fmt: skip
    if extractor is not None:
        fr = compute_features(extractor, reals)
        ff = compute_features(extractor, fakes)
        result[f"FID_{extractor.name}"] = round(fid_from_features(fr, ff), 3)
        result[f"KIDx1e3_{extractor.name}"] = round(1e3 * kid_from_features(fr, ff, generator=rng), 3)
        precision, recall = precision_recall(fr, ff)
        result[f"precision_{extractor.name}"] = round(precision, 3)
        result[f"recall_{extractor.name}"] = round(recall, 3)
    print(json.dumps(result))
    return 0


def cmd_train_inpainter(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ganmodels.components import load_inpainter, resave_with
    from ganmodels.dataset import load_images
    from ganmodels.ganinpainter import (
        InpainterTrainer,
        InpainterTrainOptions,
        InpaintNetConfig,
        holdout_indices,
        inpainter_component,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out:
        _check_output(args.out, suffixes=(".safetensors",), what="a model file")
    _native_model(args.model or str(_default_model()), "train-inpainter (it writes the inpainter into the model file)")
    model, device = _load(args)
    images = load_images(args.data)
    run_dir = Path(args.run_dir) if args.run_dir else None
    snap = run_dir / "inpainter-snapshot.safetensors" if run_dir else None
    if snap is not None and snap.exists() and not args.fresh:
        trainer = InpainterTrainer.load(snap, images, device=device)
        print(f"resumed {snap} at step {trainer.step}")
    else:
        net = None if args.fresh else load_inpainter(model, device=device)
        crop = min(args.crop, images.shape[1]) // 8 * 8  # small pictures are trained whole
        options = InpainterTrainOptions(
            batch_size=args.batch, crop=crop, lr=args.lr, d_lr=args.lr, adv_weight=args.adv_weight, seed=args.seed
        )
        trainer = InpainterTrainer(
            images, options=options, net=net, net_config=InpaintNetConfig(channels=args.channels), device=device
        )
    held_out = holdout_indices(len(images), trainer.options.holdout_every)[: args.eval_images]

    snapped = {"step": trainer.step}

    def snapshot(preview) -> None:
        if run_dir is None:
            return
        snapped["step"] = trainer.step
        trainer.save(snap)
        if preview is not None:
            Image.fromarray(preview).save(run_dir / "inpainter-preview.png")
        if len(held_out):
            record = {"step": trainer.step, "hours": round(trainer.seconds / 3600, 3)}
            record["psnr_held_out"] = round(trainer.evaluate(held_out), 3)
            with open(run_dir / "inpainter-metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    bar = _tqdm(total=args.steps, initial=trainer.step, desc="inpainter", unit="step", disable=args.quiet)
    last_snap = time.monotonic()
    s = preview = None
    with _StopBetweenSteps() as stop:
        for s in trainer.run(args.steps, preview_every=args.preview_every):
            bar.update(1)
            bar.set_postfix(psnr_hole=f"{s.psnr_hole:.2f}", refresh=False)
            preview = s.preview if s.preview is not None else preview
            if run_dir is not None and time.monotonic() - last_snap > 60 * args.snap_minutes:
                snapshot(preview)
                last_snap = time.monotonic()
            if stop.requested:
                break
    bar.close()
    if trainer.step != snapped["step"]:
        snapshot(preview)
    card = dict(model.card)
    card["inpainter"] = {
        "network": f"gated-conv U-Net ({trainer.net.config.channels} channels) + SN-PatchGAN",
        "data": Path(args.data).name,
        "steps": trainer.step,
        "batch": trainer.options.batch_size,
        "crop": trainer.options.crop,
        "hours": round(trainer.seconds / 3600, 2),
        "held_out_every": trainer.options.holdout_every,
    }
    if len(held_out) and trainer.step:
        card["inpainter"]["psnr_held_out_db"] = round(trainer.evaluate(held_out), 2)
    out = resave_with(model, args.out or model.path, add={"inpainter": inpainter_component(trainer.net)}, card=card)
    last = f" (last batch hole PSNR {s.psnr_hole:.2f} dB)" if s is not None else ""
    print(f"wrote {out} with an inpainter trained {trainer.step} steps{last}")
    return 0


def cmd_train_encoder(args: argparse.Namespace) -> int:
    import torch

    from ganmodels.anchors import generator_fingerprint
    from ganmodels.components import load_encoder, load_perceptual, resave_with
    from ganmodels.encoder import ENCODER_KIND, EncoderTrainer, EncoderTrainOptions, new_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out:
        _check_output(args.out, suffixes=(".safetensors",), what="a model file")
    _native_model(args.model or str(_default_model()), "train-encoder (it writes the encoder into the model file)")
    model, device = _load(args)
    perceptual = load_perceptual(model, device=device)
    images = None
    if args.data:
        from ganmodels.dataset import load_images

        images = load_images(args.data)
    from ganmodels.device import training_precision

    precision = training_precision(args.precision, device)
    run_dir = Path(args.run_dir) if args.run_dir else None
    snap = run_dir / "encoder-snapshot.safetensors" if run_dir else None
    if snap is not None and snap.exists() and not args.fresh:
        trainer = EncoderTrainer.load(
            snap, model.G, perceptual=perceptual, num_steps=args.steps, images=images, precision=precision
        )
        print(f"resumed {snap} at step {trainer.step}")
    else:
        E = load_encoder(model, device=device) if not args.fresh else None
        prior = dict(model.card.get("encoder") or {}) if E is not None else {}
        if E is None:
            E = new_encoder(model.G)
        options = EncoderTrainOptions(
            num_steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            seed=args.seed,
            real_fraction=args.real_fraction if images is not None else 0.0,
            precision=precision,
        )
        trainer = EncoderTrainer(E, model.G, options=options, perceptual=perceptual, images=images)
        trainer.prior_steps = int(prior.get("steps", 0))
        trainer.prior_seconds = float(prior.get("hours", 0.0)) * 3600
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    bar = _tqdm(total=args.steps, initial=trainer.step, desc="encoder", unit="step", disable=args.quiet)
    last_snap = time.monotonic()
    saved_step = trainer.step
    s = None
    with _StopBetweenSteps() as stop:
        for s in trainer.run():
            bar.update(1)
            bar.set_postfix(psnr=f"{s.psnr:.2f}", latent=f"{s.losses['latent']:.4f}", refresh=False)
            if snap is not None and time.monotonic() - last_snap > 60 * args.snap_minutes:
                trainer.save(snap)
                saved_step, last_snap = trainer.step, time.monotonic()
                with open(run_dir / "encoder-metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": s.step, "psnr_samples": round(s.psnr, 3), **s.losses}) + "\n")
            if stop.requested:
                break
    bar.close()
    if snap is not None and trainer.step != saved_step:
        trainer.save(snap)
    if trainer.step < trainer.options.num_steps:
        where = f" --run-dir {run_dir}" if run_dir else ""
        print(f"stopped at step {trainer.step}; continue with the same command{where}", file=sys.stderr)
    sd = {k: v.detach().cpu() for k, v in trainer.E.state_dict().items()}
    card = dict(model.card)
    card["encoder"] = {
        "steps": trainer.prior_steps + trainer.step,  # counting the training of the encoder this run started from
        "batch": trainer.options.batch_size,
        "real_fraction": trainer.options.real_fraction,
        "hours": round((trainer.prior_seconds + trainer.seconds) / 3600, 2),
        "psnr_samples_db": round(s.psnr, 2)
        if s is not None
        else dict(card.get("encoder") or {}).get("psnr_samples_db"),
        "generator": generator_fingerprint(model.G),  # the generator it was trained for
    }
    out = resave_with(
        model,
        args.out or model.path,
        add={"encoder": (ENCODER_KIND, trainer.E.config.to_dict(), sd)},
        card=card,
        quantize=["encoder"] if args.int8 else [],
    )
    last = f" (last batch PSNR on samples {s.psnr:.2f} dB)" if s is not None else ""
    print(f"wrote {out} with an encoder trained {trainer.step} steps{last}")
    return 0


# --------------------------------------------------------------------------------------------------------------


# train options a run fixes when it starts (a resume ignores them; --lr, --gamma ... may change)
_RUN_FIXED_OPTIONS = ("batch", "cbase", "cmax", "map", "z_dim", "w_dim", "loss", "pl_weight", "augment", "cond",
                      "no_noise", "spectral_norm", "seed")  # fmt: skip


def _train_default(dest: str) -> Any:
    """The default of one ``train`` option."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"].get_default(dest)


def _augment_policy(text: str) -> tuple[str, ...]:
    from ganmodels.augment import ALL_POLICIES

    ops = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in ops if t not in ALL_POLICIES]
    if unknown or not ops:
        raise argparse.ArgumentTypeError(
            f"unknown transform {unknown[0] if unknown else text!r}; use {','.join(ALL_POLICIES)}"
        )
    return ops


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that names each option's default, unless it has none or the text already speaks of it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            text
            and "default" not in text
            and action.default is not None
            and action.default is not False
            and action.default != argparse.SUPPRESS
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _number(text: str, kind: type, *, minimum: float, inclusive: bool) -> Any:
    """Parse an option's number and check its lower bound (argparse shows the message)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if not (value >= minimum if inclusive else value > minimum):
        bound = f"at least {minimum}" if inclusive else f"more than {minimum}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, minimum=1, inclusive=True)


def _non_negative_int(text: str) -> int:
    return _number(text, int, minimum=0, inclusive=True)


def _positive_float(text: str) -> float:
    return _number(text, float, minimum=0, inclusive=False)


def _non_negative_float(text: str) -> float:
    return _number(text, float, minimum=0, inclusive=True)


def _unit_float(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value:g}")
    return value


def _multiple_of_8(text: str) -> int:
    value = _positive_int(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"must be a multiple of 8, got {value}")
    return value


def _native_model(path: str | None, what: str) -> None:
    """Commands that write into a model file need a native one: say how to make it before any work is done."""
    from ganmodels.importers import detect_format

    if path and detect_format(path) != "safetensors":
        out = Path(path).with_suffix(".safetensors").name
        raise ValueError(f"{Path(path).name} is not a native model file; {what} needs one: "
                         f"ganmodels convert {path} {out}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganmodels", description="GAN models: sample, train, invert, edit, inpaint.")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps; env GAN_EDITOR_DEVICE")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="describe a model file")
    s.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser(
        "convert", help="convert an NVIDIA .pkl, rosinality / e4e / DCGAN .pt or model file to a native model file"
    )
    s.add_argument("input", help="checkpoint to read (never runs code from it)")
    s.add_argument("output", help="output .safetensors model file")
    s.add_argument("--fp16", action="store_true", help="store weights as fp16 (half the size)")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("sample", help="render a grid of samples from seeds")
    s.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    s.add_argument("--seeds", default="0-15", help="e.g. 0-15 or 1,5,9")
    s.add_argument(
        "--truncation",
        type=float,
        default=None,
        help="truncation psi: how far from the centre (an anchor, else the mean w) towards the seed's own latent "
        "(default: 0.05 around anchors, 0.7 otherwise)",
    )
    s.add_argument("--cutoff", type=int, default=None, help="truncate only the first N ws (plain samples)")
    s.add_argument(
        "--anchors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw each sample around one of the model's anchors (training pictures' latents) when it has them",
    )
    s.add_argument(
        "--class",
        dest="class_index",
        type=int,
        default=None,
        help="conditional models: draw every sample in this class (default: each seed draws one)",
    )
    s.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    s.add_argument("--cols", type=_positive_int, default=None, help="pictures per row (default: a square grid)")
    s.add_argument("--pad", type=_non_negative_int, default=0, help="pixels between the pictures")
    s.add_argument("--out", default="grid.png", help="the grid picture to write")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("dataset", help="training data tools")
    dsub = s.add_subparsers(dest="dataset_command", required=True, metavar="{build,cluster}")
    b = dsub.add_parser("build", help="build a training set from an image folder or zip")
    b.add_argument("src")
    b.add_argument("--res", type=int, required=True, choices=[32, 64, 128, 256, 512, 1024])
    b.add_argument("--out", required=True, help="data.npz or a folder")
    b.add_argument("--xflip", action="store_true", help="also store mirrored copies")
    b.add_argument("--no-dedup", action="store_true", help="keep exact duplicates")
    b.set_defaults(func=cmd_dataset_build)
    b = dsub.add_parser(
        "cluster", help="label a dataset's pictures with k-means classes (for conditional training, --cond)"
    )
    b.add_argument("data", help="dataset .npz or folder; the labels are written into it")
    b.add_argument("--k", type=_positive_int, default=32, help="number of classes")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--preview", default=None, help="write a PNG with a row of pictures per class")
    b.add_argument(
        "--refine",
        action="store_true",
        help="split the dataset's classes into --k finer ones (in proportion to their sizes); a run on the old "
        "classes can go on on the new ones with 'train --init-from', each new class starting as its old one",
    )
    b.set_defaults(func=cmd_dataset_cluster)

    s = sub.add_parser("train", help="train a StyleGAN2 on a dataset (use torchrun for several processes)")
    s.add_argument("data", help="dataset .npz or folder from 'ganmodels dataset build'")
    s.add_argument("--out", required=True, help="run directory (snapshots, grids, logs)")
    s.add_argument("--resume", default=None, help="continue from the newest snapshot in this run directory")
    s.add_argument(
        "--init-from",
        default=None,
        help="start a new run from the weights of a training snapshot or model file (transfer learning); "
        "layers that match are copied, narrower ones (a larger --cbase, a new --cond) are widened so that the "
        "networks start out computing what the source did; with --cond and a snapshot trained on other labels of "
        "the same pictures (e.g. 'dataset cluster --refine'), every class starts as the old class most of its "
        "pictures had",
    )
    s.add_argument(
        "--cond",
        action="store_true",
        help="condition G and D on the dataset's class labels (see 'dataset cluster'); samples draw a class too",
    )
    s.add_argument("--kimg", type=_positive_float, default=1000, help="train until this many thousand images")
    s.add_argument("--batch", type=_positive_int, default=16)
    s.add_argument("--cbase", type=int, default=2048, help="channel base (channels = min(cbase / res, cmax))")
    s.add_argument("--cmax", type=int, default=128)
    s.add_argument("--map", type=int, default=2, help="mapping network depth")
    s.add_argument("--z-dim", type=int, default=512)
    s.add_argument("--w-dim", type=int, default=512)
    s.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate of G and D (default 0.0025; given with --resume, it changes the run's, e.g. lowered "
        "for the last stretch of a long run)",
    )
    s.add_argument("--loss", default="ns", choices=["ns", "hinge", "wgan-gp"], help="ns = non-saturating + R1")
    s.add_argument(
        "--gamma",
        type=float,
        default=None,
        help="R1 weight (default 0.0002 * res^2 / batch; given with --resume, it changes the run's)",
    )
    s.add_argument("--pl-weight", type=float, default=0.0, help="path length regularisation weight")
    s.add_argument(
        "--ema-kimg",
        type=float,
        default=None,
        help="half-life of G's moving average in thousands of images (default batch * 10 / 32; given with "
        "--resume, it changes the run's)",
    )
    s.add_argument("--augment", default="diffaugment", choices=["diffaugment", "ada", "none"])
    s.add_argument(
        "--augment-p",
        type=float,
        default=None,
        help="starting ADA probability of a new run (default: the --init-from checkpoint's, else 0); "
        "ADA adapts it from there",
    )
    s.add_argument(
        "--augment-policy",
        type=_augment_policy,
        default=None,
        help="comma-separated transforms of the augmentation: color, translation, cutout, scale, rotate (default "
        "color,translation,cutout; given with --resume, it changes the run's)",
    )
    s.add_argument(
        "--diversity",
        type=float,
        default=None,
        help="weight of a loss that keeps generated pictures of one class as different from each other as the "
        "data's are (default 0; given with --resume, it changes the run's)",
    )
    s.add_argument(
        "--d-recon",
        type=float,
        default=None,
        help="weight of a self-supervised task for D: a small decoder rebuilds each real picture from D's 8 px "
        "features, so D must describe content instead of memorising the data (FastGAN; default 0; given with "
        "--resume, it changes the run's)",
    )
    s.add_argument(
        "--g-recon",
        type=float,
        default=None,
        help="weight of a reconstruction task for G: every training picture gets a learned latent code, and each "
        "step G also rebuilds 16 pictures from theirs (GLO), so it learns to draw every picture of the data, the "
        "rare ones too; its gradients are small beside the adversarial ones, weights of about 10 matter; 0.87-0.91 "
        "of the speed at --batch 32 (bench/train_speed.py; default 0; given with --resume, it changes the run's)",
    )
    s.add_argument(
        "--g-recon-batch",
        type=int,
        default=None,
        metavar="N",
        help="pictures G rebuilds from their codes each step with --g-recon (default 16; more = more passes over "
        "the data per kimg, each step a little slower; given with --resume, it changes the run's)",
    )
    s.add_argument(
        "--g-recon-adv",
        type=float,
        default=None,
        metavar="W",
        help="with --g-recon, D also judges the rebuilt pictures and G's loss gains W x its adversarial loss on "
        "them (L1 + GAN as in pix2pix: L1 alone settles for a blur; default 0; given with --resume, it changes the "
        "run's)",
    )
    s.add_argument(
        "--g-recon-code-lr",
        type=float,
        default=None,
        metavar="LR",
        help="step of the codes of --g-recon: each visit of a picture moves every number of its code by about this "
        "much (Adam); a picture is visited once every (pictures / --g-recon-batch) steps (default 0.003; given "
        "with --resume, it changes the run's)",
    )
    s.add_argument(
        "--g-recon-init",
        default=None,
        metavar="MODEL",
        help="start the codes of --g-recon from the guesses of this model file's encoder (e.g. the shipped model, "
        "for a run that continues its training) instead of random codes of each picture's class",
    )
    s.add_argument(
        "--ada-target", type=float, default=0.6, help="ADA's target for E[sign(D(real))] (lower = more augmentation)"
    )
    s.add_argument("--spectral-norm", action="store_true", help="spectral normalisation on D")
    s.add_argument(
        "--no-noise",
        action="store_true",
        help="no per-pixel noise inputs in G: every detail comes from the latent (editable), as in StyleGAN3",
    )
    s.add_argument("--xflip", action="store_true", help="random horizontal flips of the data")
    s.add_argument(
        "--balance",
        type=_unit_float,
        default=None,
        help="draw the variants of one emoji (pictures named alike but for skin tone, e.g. 1f44b-1f3fd.webp) less "
        "often: each picture weighs 1 / (pictures of its emoji) ^ BALANCE, so 0 = every picture alike (default), "
        "1 = every emoji alike; conditional runs draw the fakes' classes the same way (given with --resume, it "
        "changes the run's)",
    )
    s.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    s.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory layout (faster on most CPUs; default on for new runs, a resumed run keeps its own)",
    )
    s.add_argument("--snap-minutes", type=float, default=10.0)
    s.add_argument("--snap-kimg", type=float, default=None)
    s.add_argument("--threads", type=_non_negative_int, default=0, help="torch CPU threads (0 = default)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("export", help="write a model file from a training run's newest snapshot (G_ema + D)")
    s.add_argument("run", help="run directory or snapshot file")
    s.add_argument("--out", required=True)
    s.add_argument("--card", default=None, help="JSON file with the model card (name, licence, data, metrics)")
    s.add_argument("--fp16", action="store_true", help="store weights as fp16 (half the size)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("invert", help="find the latent of an image (optimisation or encoder + refinement)")
    s.add_argument("image")
    s.add_argument("--model", default=None, help="model file (default: the shipped model)")
    s.add_argument("--space", default="w+", choices=["w", "w+"])
    s.add_argument("--steps", type=_positive_int, default=300)
    s.add_argument("--mask", default=None, help="PNG: white (or transparent) = ignore these pixels")
    s.add_argument(
        "--encoder", action="store_true", help="start from the model's encoder (W+), refine with the pixel loss"
    )
    s.add_argument("--pti", type=int, default=0, help="pivotal tuning steps after inversion (0 = off)")
    s.add_argument("--ms-ssim", type=_non_negative_float, default=0.0, help="MS-SSIM loss weight")
    s.add_argument("--no-perceptual", action="store_true", help="no discriminator-feature loss")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="latent.npz")
    s.add_argument("--png", default=None, help="also write the reconstruction")
    s.set_defaults(func=cmd_invert)

    s = sub.add_parser("edit", help="apply latent directions to a latent file and render it")
    s.add_argument("latent")
    s.add_argument("--model", default=None)
    s.add_argument("--direction", action="append", help="e.g. sefa:3=2.0, pca:1@0-3=-1.5, smile=1 (repeatable)")
    s.add_argument("--directions", default=None, help="sidecar direction file")
    s.add_argument("--out", default="edit.png")
    s.set_defaults(func=cmd_edit)

    s = sub.add_parser("directions", help="find latent directions (SeFa closed form or GANSpace PCA)")
    s.add_argument("model", nargs="?")
    s.add_argument("--method", default="sefa", choices=["sefa", "ganspace"])
    s.add_argument("--k", type=_positive_int, default=10)
    s.add_argument("--layers", default=None, help="ws range, e.g. 0-3 (inclusive)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="write a sidecar .safetensors")
    s.add_argument("--into-model", default=None, help="write a copy of the model with these directions added")
    s.add_argument(
        "--describe",
        type=_non_negative_int,
        default=8,
        help="render this many samples to measure what each direction does (size, colour, position) for its "
        "description, which the editor shows on the slider (samples x (1 + 2 k) renders); 0: do not",
    )
    s.set_defaults(func=cmd_directions)

    s = sub.add_parser("inpaint", help="fill the masked part of an image")
    s.add_argument("image")
    s.add_argument("mask", help="PNG: white (or opaque alpha) = fill")
    s.add_argument(
        "--method", default="gan-inversion", help="gan-inversion, gan-inpainter, telea, ns, fsr-fast, fsr-best"
    )
    s.add_argument("--model", default=None)
    s.add_argument("--steps", type=_positive_int, default=200, help="inversion steps (GAN methods)")
    s.add_argument(
        "--tune-steps",
        type=int,
        default=0,
        help="gan-inversion: pivotal-tuning steps of a copy of the generator on the known pixels after the inversion",
    )
    s.add_argument(
        "--blend",
        default=None,
        choices=["feather", "poisson", "none"],
        help="how a GAN fill meets the picture (default: poisson for gan-inversion, feather for gan-inpainter)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="inpainted.png")
    s.set_defaults(func=cmd_inpaint)

    s = sub.add_parser(
        "metrics",
        help="SWD, FID/KID, precision/recall (share of samples that fall among the data's features / of the data "
        "among the samples') and diversity_ratio (generated / data distance between two pictures of one class; of "
        "any two pictures when the model or the data has no classes) of a model against a dataset",
    )
    s.add_argument("model", nargs="?")
    s.add_argument("--data", required=True)
    s.add_argument("--num", type=_positive_int, default=2000)
    s.add_argument("--truncation", type=float, default=1.0)
    s.add_argument("--inception", default=None, help="pt_inception-2015-12-05 weights file for standard FID")
    s.add_argument(
        "--features",
        default=None,
        metavar="MODEL",
        help="compute FID/KID on this model file's discriminator instead of the measured model's own, so that "
        "several models (e.g. the snapshots of runs) are compared on the same features",
    )
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser(
        "train-inpainter", help="train the feed-forward GAN inpainter of a model's domain and store it in the model"
    )
    s.add_argument("model", nargs="?")
    s.add_argument("--data", required=True, help="domain dataset (.npz / folder), e.g. 256 px pictures")
    s.add_argument("--steps", type=_positive_int, default=2000, help="total steps (a resumed run continues up to this)")
    s.add_argument("--batch", type=_positive_int, default=8)
    s.add_argument("--crop", type=_multiple_of_8, default=128, help="training crop size (multiple of 8)")
    s.add_argument("--channels", type=int, default=32)
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--adv-weight", type=float, default=0.01, help="patch-discriminator loss weight (0: L1 only)")
    s.add_argument("--run-dir", default=None, help="folder for resumable snapshots, previews and metrics")
    s.add_argument("--snap-minutes", type=float, default=10.0)
    s.add_argument("--preview-every", type=int, default=50)
    s.add_argument("--eval-images", type=int, default=50, help="held-out images scored at each snapshot")
    s.add_argument("--threads", type=_non_negative_int, default=0, help="torch CPU threads (0 = default)")
    s.add_argument("--fresh", action="store_true", help="ignore the model's inpainter and the run's snapshot")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="output model file (default: overwrite the input)")
    s.set_defaults(func=cmd_train_inpainter)

    s = sub.add_parser(
        "anchors",
        help="fit the latents of the model's training pictures, so that samples are drawn around them",
    )
    s.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    s.add_argument("--data", required=True, help="the model's training set (.npz or folder, with its labels)")
    s.add_argument("--out", required=True, help="the model file to write (the model with its anchors)")
    s.add_argument("--rows", type=_positive_int, default=5, help="distinct latent rows per anchor (W+ in groups)")
    s.add_argument("--steps", type=_positive_int, default=150, help="optimisation steps per picture")
    s.add_argument("--lr", type=float, default=0.02)
    s.add_argument("--batch", type=_positive_int, default=32)
    s.add_argument(
        "--init-snapshot",
        default=None,
        help="a --g-recon training snapshot of this model: start every anchor at its picture's learned code",
    )
    s.add_argument("--snap-minutes", type=float, default=10.0, help="keep progress in OUT.partial this often")
    s.add_argument(
        "--compact",
        action="store_true",
        help="store each anchor as its mean row (int8) plus its rows' offsets from it in 4 bits: about 0.7 of the "
        "size of int8 rows, for a model that must stay small",
    )
    s.add_argument(
        "--one-per-concept",
        action="store_true",
        help="store one anchor per emoji: its plain variant, not each skin tone / presentation (by file name)",
    )
    s.add_argument(
        "--more",
        action="store_true",
        help="fit the anchors MODEL carries (of all the data's pictures) --steps more, from where they are; with "
        "--one-per-concept only those the file keeps",
    )
    s.set_defaults(func=cmd_anchors)

    s = sub.add_parser("train-encoder", help="train the model's e4e-style encoder on its own samples")
    s.add_argument("model", nargs="?")
    s.add_argument("--steps", type=_positive_int, default=2000)
    s.add_argument("--batch", type=_positive_int, default=16)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument(
        "--fresh", action="store_true", help="start from scratch instead of the snapshot / the existing encoder"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="output model file (default: overwrite the input)")
    s.add_argument(
        "--run-dir", default=None, help="keep a resumable snapshot here (the run resumes from it unless --fresh)"
    )
    s.add_argument("--snap-minutes", type=float, default=10.0)
    s.add_argument("--threads", type=_non_negative_int, default=0, help="torch CPU threads (0 = default)")
    s.add_argument(
        "--data",
        default=None,
        help="dataset of the model's domain at its resolution: part of each batch is real pictures (e4e-style)",
    )
    s.add_argument("--real-fraction", type=float, default=0.5, help="share of real pictures per batch with --data")
    s.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 autocast on CPUs with native bf16 (AMX / AVX512-BF16), else fp32",
    )
    s.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store the encoder's weights as int8 with a scale per output row (half the size of fp16; its guess, "
        "which only starts the inversion, moves by about 0.3%%)",
    )
    s.set_defaults(func=cmd_train_encoder)
    nested = [sp for sp in sub.choices["dataset"]._actions if isinstance(sp, argparse._SubParsersAction)]
    parsers = [*sub.choices.items(), *(item for action in nested for item in action.choices.items())]
    for name, sp in parsers:  # the global options also work after the sub-command's name
        sp.formatter_class = _DefaultsHelpFormatter
        given = sp._option_string_actions
        if "--device" not in given:
            sp.add_argument("--device", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if "--quiet" not in given:
            sp.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if "--threads" not in given and name not in ("info", "dataset", "convert", "export", "build"):
            sp.add_argument("--threads", type=_non_negative_int, default=0, help="torch CPU threads (0 = default)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ganmodels`` console script."""
    from safetensors import SafetensorError

    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    try:
        if getattr(args, "threads", 0):
            import torch

            torch.set_num_threads(args.threads)
        rc = args.func(args)
    except BrokenPipeError:  # (output piped into e.g. head, which stopped reading): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SafetensorError as e:  # (a file given as a snapshot or model that is not one)
        print(f"error: not a readable .safetensors file ({e})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if not args.quiet and args.command not in ("info",):
        print(f"done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
