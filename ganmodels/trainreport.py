"""Files a training run writes besides snapshots: options, a step log, sample grids, a loss plot, a model file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganmodels.components import discriminator_component
from ganmodels.generate import make_grid, to_uint8
from ganmodels.modelfile import save_model
from ganmodels.networks import one_hot_c, random_c
from ganmodels.training import TrainProgress, TrainState, diversity_targets, fixed_grid_z


class SnapshotReporter:
    """Called by ``train`` after each snapshot; also collects per-step losses into ``stats.jsonl``."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        dataset: Any,
        data_name: str,
        xflip: bool = False,
        balance: float = 0.0,
        log_every: int = 20,
        metric_images: int = 500,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.dataset = dataset
        self.data_name = data_name
        self.xflip = xflip
        self.balance = balance
        self.log_every = log_every
        self.metric_images = metric_images  # 0 = no per-snapshot metrics
        self._acc: dict[str, list[float]] = {}
        self._classes: tuple[Any, np.ndarray] | None = None
        self._data_diversity: torch.Tensor | None = None  # [K] the data's distance within a class

    def write_config(self, state: TrainState) -> None:
        (self.run_dir / "training_options.json").write_text(
            json.dumps(
                {
                    "config": state.config.to_dict(),
                    "data": self.data_name,
                    "xflip": self.xflip,
                    "balance": self.balance,
                },
                indent=2,
            )
        )

    def log(self, prog: TrainProgress) -> None:
        """Average losses over ``log_every`` steps and append a line to stats.jsonl."""
        for k, v in prog.losses.items():
            self._acc.setdefault(k, []).append(v)
        self._acc.setdefault("img_s", []).append(prog.images_per_second)
        if prog.step % self.log_every == 0:
            row = {k: float(np.mean(v)) for k, v in self._acc.items()}
            row.update(
                step=prog.step, kimg=prog.kimg, augment_p=prog.augment_p, hours=prog.seconds / 3600, t=time.time()
            )
            with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            self._acc.clear()

    def __call__(self, state: TrainState, ckpt: Path) -> None:
        G = state.G_ema
        kimg = state.cur_nimg // 1000
        z = fixed_grid_z(G.z_dim, 64)
        with torch.no_grad():
            ws = G.mapping(z, one_hot_c(G, torch.arange(64) % max(G.c_dim, 1)))  # conditional: classes in order
            img = torch.cat([G.synthesis(ws[i : i + 16], noise_mode="const") for i in range(0, 64, 16)])
        from PIL import Image

        Image.fromarray(make_grid(to_uint8(img), cols=8)).save(self.run_dir / f"fakes{kimg:06d}.png")
        Image.fromarray(make_grid(to_uint8(img), cols=8)).save(self.run_dir / "fakes-latest.png")
        card = {
            "name": "training snapshot",
            "training_data": self.data_name,
            "kimg": round(state.total_kimg, 3),
            "hours": round(state.total_seconds / 3600, 2),
            "step": state.step,
        }
        if state.prior_kimg:
            card["kimg_note"] = f"{state.prior_kimg:.1f} kimg before this run (--init-from), included"
        save_model(
            self.run_dir / "model-latest.safetensors",
            G,
            config=state.config.G,
            card=card,
            components={"discriminator": discriminator_component(state.D, state.config.D)},
        )
        if self.metric_images > 0:
            self.write_metrics(state)
        self.plot_losses()

    def write_metrics(self, state: TrainState) -> dict[str, float]:
        """SWD of G_ema samples vs data and the mean pixel distance between pairs of samples (diversity; a
        collapsing G drives it towards 0), appended to metrics.jsonl. Same seeds every snapshot. A conditional
        run adds ``class_consistency``: the share of samples nearest to their own class's data (clusters.py).
        ``diversity_ratio``: generated / data distance between two pictures of one class (metrics.py), about 1
        when G varies within a class as much as the data does."""
        from ganmodels.metrics import diversity_ratio, intra_class_distance, swd

        G, n = state.G_ema, self.metric_images
        gen = torch.Generator().manual_seed(2024)
        z = torch.randn([n, G.z_dim], generator=gen)
        c = random_c(G, n, generator=gen)  # [n, c_dim]
        with torch.no_grad():
            fakes = torch.cat(
                [G(z[i : i + 50], c[i : i + 50], noise_mode="const") for i in range(0, n, 50)]
            ).float()  # [n, C, R, R]
        # The data as it is, also in a --balance run (comparable across the run and with other runs)
        uniform = {"weighted": False} if getattr(self.dataset, "weights", None) is not None else {}
        reals = self.dataset.sample(n, generator=gen, **uniform).float()  # [n, C, R, R] in [-1, 1]
        row: dict[str, Any] = {"kimg": round(state.cur_nimg / 1000, 3), "step": state.step, "images": n}
        row.update(swd(reals, fakes, generator=torch.Generator().manual_seed(0)))
        half = n // 2
        row["pair_l1_fake"] = float((fakes[:half] - fakes[half : 2 * half]).abs().mean() / 2)  # in [0, 1] units
        row["pair_l1_real"] = float((reals[:half] - reals[half : 2 * half]).abs().mean() / 2)
        conditional = G.c_dim > 0 and getattr(self.dataset, "labels", None) is not None
        if conditional:
            row["class_consistency"] = self._class_consistency(to_uint8(fakes), c.argmax(1).numpy())
        if hasattr(self.dataset, "images"):  # generated / data distance between pictures of one class
            if self._data_diversity is None:
                self._data_diversity = diversity_targets(self.dataset, G.c_dim if conditional else 0).double()
            k = len(self._data_diversity)
            labels = c.argmax(1) if conditional else torch.zeros(n, dtype=torch.long)
            row["diversity_ratio"] = diversity_ratio(intra_class_distance(fakes, labels, k), self._data_diversity)
        if state.codes is not None and hasattr(self.dataset, "batch") and len(state.codes) == len(self.dataset):
            row["rebuild_psnr"] = self._rebuild_psnr(state)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def _rebuild_psnr(self, state: TrainState, *, num: int = 256) -> float:
        """A --g-recon run: mean PSNR (dB) of G_ema drawing the same ``num`` training pictures (evenly spread over
        the data) from their codes; how well G has learnt to draw the data, whatever D thinks."""
        from ganmodels.generate import synthesize
        from ganmodels.losses import psnr

        G = state.G_ema
        idx = torch.linspace(0, len(self.dataset) - 1, min(num, len(self.dataset))).round().long()  # [n]
        with torch.no_grad():
            ws = state.codes.detach()[idx, None].expand(-1, G.num_ws, -1)  # [n, num_ws, w_dim]
            drawn = synthesize(G, ws, batch_size=64).float().cpu()  # [n, 3, R, R]
        return float(psnr(drawn, self.dataset.batch(idx)).mean())

    def _class_consistency(self, fakes: np.ndarray, labels: np.ndarray) -> float:
        from ganmodels.clusters import FeatureSpace, class_consistency

        if self._classes is None:  # the data's feature space and class centres, once per run
            images, data_labels = self.dataset.images, self.dataset.labels
            space = FeatureSpace.fit(images)
            feats = space.project(images)
            centres = np.stack(
                [
                    feats[data_labels == k].mean(0) if (data_labels == k).any() else np.full(feats.shape[1], 1e15)
                    for k in range(int(data_labels.max()) + 1)
                ]
            )
            self._classes = (space, centres)
        space, centres = self._classes
        return class_consistency(space, centres, fakes, labels)

    def plot_losses(self) -> Path | None:
        """losses.png from stats.jsonl (matplotlib, no display needed)."""
        path = self.run_dir / "stats.jsonl"
        if not path.exists():
            return None
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if len(rows) < 2:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        kimg = [r["kimg"] for r in rows]
        mpath = self.run_dir / "metrics.jsonl"
        mrows = [json.loads(line) for line in mpath.read_text().splitlines() if line.strip()] if mpath.exists() else []
        fig, axes = plt.subplots(1, 3 if mrows else 2, figsize=(15 if mrows else 10, 3.5))
        for key in ("G", "D", "D_recon", "G_recon"):  # the --d-recon head's / --g-recon rebuilding's error, when on
            if key in ("G", "D") or any(key in r for r in rows):
                axes[0].plot(kimg, [r.get(key, np.nan) for r in rows], label=key)
        axes[0].set_xlabel("kimg")
        axes[0].set_title("losses")
        axes[0].legend()
        for key in ("D_real", "D_fake"):
            axes[1].plot(kimg, [r.get(key, np.nan) for r in rows], label=key)
        axes[1].set_xlabel("kimg")
        axes[1].set_title("D logits")
        axes[1].legend()
        if mrows:
            mk = [r["kimg"] for r in mrows]
            axes[2].plot(mk, [r.get("SWDx1e3_avg", np.nan) for r in mrows], "o-", label="SWD x1e3 (avg)")
            if any("rebuild_psnr" in r for r in mrows):  # a --g-recon run: how well G draws the data from codes
                axes[2].plot(mk, [r.get("rebuild_psnr", np.nan) for r in mrows], "d-", color="C4", label="rebuild dB")
            axes[2].set_xlabel("kimg")
            axes[2].set_title("snapshot metrics")
            twin = axes[2].twinx()
            twin.plot(mk, [r.get("pair_l1_fake", np.nan) for r in mrows], "s--", color="C1", label="pair L1 fakes")
            twin.plot(mk, [r.get("pair_l1_real", np.nan) for r in mrows], ":", color="C2", label="pair L1 reals")
            twin.plot(mk, [r.get("diversity_ratio", np.nan) for r in mrows], "^-", color="C3", label="diversity ratio")
            axes[2].legend(loc="upper left")
            twin.legend(loc="upper right")
        fig.tight_layout()
        out = self.run_dir / "losses.png"
        fig.savefig(out, dpi=80)
        plt.close(fig)
        return out
