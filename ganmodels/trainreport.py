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
from ganmodels.training import TrainProgress, TrainState, fixed_grid_z


class SnapshotReporter:
    """Called by ``train`` after each snapshot; also collects per-step losses into ``stats.jsonl``."""

    def __init__(
        self, run_dir: str | Path, *, dataset: Any, data_name: str, xflip: bool = False, log_every: int = 20
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.dataset = dataset
        self.data_name = data_name
        self.xflip = xflip
        self.log_every = log_every
        self._acc: dict[str, list[float]] = {}

    def write_config(self, state: TrainState) -> None:
        (self.run_dir / "training_options.json").write_text(
            json.dumps({"config": state.config.to_dict(), "data": self.data_name, "xflip": self.xflip}, indent=2)
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
            ws = G.mapping(z, torch.zeros([64, G.c_dim]))
            img = torch.cat([G.synthesis(ws[i : i + 16], noise_mode="const") for i in range(0, 64, 16)])
        from PIL import Image

        Image.fromarray(make_grid(to_uint8(img), cols=8)).save(self.run_dir / f"fakes{kimg:06d}.png")
        Image.fromarray(make_grid(to_uint8(img), cols=8)).save(self.run_dir / "fakes-latest.png")
        card = {
            "name": "training snapshot",
            "training_data": self.data_name,
            "kimg": round(state.cur_nimg / 1000, 3),
            "hours": round(state.seconds / 3600, 2),
            "step": state.step,
        }
        save_model(
            self.run_dir / "model-latest.safetensors",
            G,
            config=state.config.G,
            card=card,
            components={"discriminator": discriminator_component(state.D, state.config.D)},
        )
        self.plot_losses()

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
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for key in ("G", "D"):
            axes[0].plot(kimg, [r.get(key, np.nan) for r in rows], label=key)
        axes[0].set_xlabel("kimg")
        axes[0].set_title("losses")
        axes[0].legend()
        for key in ("D_real", "D_fake"):
            axes[1].plot(kimg, [r.get(key, np.nan) for r in rows], label=key)
        axes[1].set_xlabel("kimg")
        axes[1].set_title("D logits")
        axes[1].legend()
        fig.tight_layout()
        out = self.run_dir / "losses.png"
        fig.savefig(out, dpi=80)
        plt.close(fig)
        return out
