"""The loaded model: which GanModel the editor uses, on which device, registered with the job runner."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import torch
from PySide6.QtCore import QObject, Signal

from ganmodels.device import describe
from ganmodels.directions import direction_problem, load_directions
from ganmodels.generate import truncation_centre
from ganmodels.importers import load_any
from ganmodels.modelfile import GanModel

DEFAULT_TRUNCATION = 0.7  # truncation psi of a new sample of a model without anchors


class ModelSession(QObject):
    """Holds the current model. Each load gets a new key, so requests made for an older model never render
    with a newer one."""

    model_changed = Signal()
    directions_changed = Signal()  # directions were added to the loaded model

    def __init__(
        self, models, *, device: torch.device | str = "cpu", threads: int = 1, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._registry = models  # jobs.ModelRegistry
        self.device = torch.device(device)
        self.threads = threads  # the worker's torch threads (shown for the CPU)
        self.model: GanModel | None = None
        self.key = ""
        self._keys = itertools.count(1)  # a new key per load

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def device_text(self) -> str:
        if self.device.type == "cpu":
            return f"CPU ({self.threads} thread{'s' if self.threads != 1 else ''})"
        return describe(self.device)

    def load(self, path: str | Path) -> GanModel:
        """Load a model file (raises ModelFileError with a user-facing message)."""
        model = load_any(path, device=self.device)  # native, NVIDIA .pkl, rosinality / DCGAN .pt; never runs code
        self.set_model(model)
        return model

    def add_directions(self, path: str | Path) -> list[str]:
        """Add the directions of a sidecar file (``ganmodels directions --out``) to the loaded model; returns their
        names as shown (a name the model already has gets the file's name appended). Raises ValueError with a
        message for people when there is no model, the file cannot be read, or a direction does not fit."""
        path = Path(path)
        if self.model is None:
            raise ValueError(f"{path.name} holds latent directions: open the model they belong to first.")
        loaded = load_directions(path)
        if not loaded:
            raise ValueError(f"{path.name} holds no directions.")
        m = self.model
        for name, d in loaded.items():
            problem = direction_problem(d, w_dim=m.w_dim, num_ws=m.num_ws)
            if problem is not None:
                raise ValueError(f"{path.name}: direction {name!r} {problem}; was it made for another model?")
        added = {}
        for name, d in loaded.items():
            if any(e.layers == d.layers and torch.equal(e.vector, d.vector) for e in m.directions.values()):
                continue  # (the same file added again)
            shown, n = name, 1
            while shown in m.directions or shown in added:
                n += 1
                shown = f"{name} ({path.stem})" if n == 2 else f"{name} ({path.stem} {n})"
            added[shown] = dataclasses.replace(d, name=shown)
        if not added:
            raise ValueError(f"The directions of {path.name} are loaded already.")
        m.directions = {**m.directions, **added}  # (a new dict: renders that hold the old one are unaffected)
        self.directions_changed.emit()
        return list(added)

    def set_model(self, model: GanModel | None) -> None:
        """Use an already loaded model (or None to unload)."""
        old_key = self.key
        self.model = model
        self.key = f"{model.name}#{next(self._keys)}" if model is not None else ""
        if model is not None:
            self._registry.set(self.key, model)
        if old_key:
            self._registry.remove(old_key)
        self.model_changed.emit()

    def truncation_centre(self, class_index: int | None = None, anchor: int | None = None) -> torch.Tensor:
        """What truncation pulls a layer's latent towards, on the CPU: the latent [num_ws, w_dim] of the anchor the
        layer's sample was drawn around (when the model has it), else [w_dim] the mean w of the class a conditional
        model drew the layer's seed in, else the model's mean w (see ``generate.truncation_centre``)."""
        assert self.model is not None
        bank = self.model.anchors
        if anchor is not None and bank is not None and 0 <= anchor < len(bank):
            return bank.full_ws([anchor], self.model.G.num_ws)[0].float().cpu()
        return truncation_centre(self.model.G, class_index).detach().float().cpu()

    def default_truncation(self, *, near_anchor: bool = True) -> float:
        """Truncation psi of a new sample: near its anchor for a model with anchors (unless not ``near_anchor``),
        else 0.7."""
        from ganmodels.anchors import DEFAULT_PSI

        anchored = near_anchor and self.model is not None and self.model.anchors is not None
        return DEFAULT_PSI if anchored else DEFAULT_TRUNCATION

    def card_info(self) -> dict[str, str]:
        """What the Model panel shows: label -> text."""
        m = self.model
        if m is None:
            return {}
        card = m.card
        info = {
            "Name": m.name,
            "Resolution": f"{m.resolution} x {m.resolution} px",
            "Training data": str(card.get("training_data") or "not stated"),
            "Licence": str(card.get("licence") or card.get("license") or "not stated"),
            "Trained": _trained(card),
            "Latent": f"{m.num_ws} x {m.w_dim} (W+)",
            "Directions": str(len(m.directions)) if m.directions else "none",
            "Samples": _sampling(m),
            "Device": self.device_text,
            "File": str(m.path) if m.path else "",
        }
        if "fid" in card:
            info["FID"] = _describe(card["fid"])
        metrics = card.get("metrics")
        if isinstance(metrics, dict):
            info["Metrics"] = "\n".join(f"{_metric_name(str(k))}: {_describe(v)}" for k, v in metrics.items())
        elif metrics is not None:
            info["Metrics"] = _describe(metrics)
        return info

    def card_tips(self) -> dict[str, str]:
        """Tooltips for the Model panel's values: label -> the card's notes on them."""
        card = self.model.card if self.model is not None else {}
        notes = {"Name": "description", "Trained": "kimg_note", "Metrics": "metrics_note", "Training data": "classes"}
        return {label: str(card[key]) for label, key in notes.items() if card.get(key)}


def _sampling(m: GanModel) -> str:
    """How New Sample draws: "around 3390 training pictures (23.9 dB)" for a model with anchors, else "from the
    mean w" (or "from their class's mean w" for a conditional model)."""
    if m.anchors is not None:
        db = dict(m.card.get("anchors") or {}).get("mean_psnr_db")  # (as the file gives them back)
        if not isinstance(db, (int, float)):
            db = float(m.anchors.psnr.nanmean()) if len(m.anchors) else float("nan")  # (as fitted)
        fidelity = f" ({db:.1f} dB)" if db == db else ""
        return f"around {len(m.anchors)} training pictures{fidelity}"
    return "from their class's mean w" if m.G.c_dim > 0 else "from the mean w"


def _trained(card: dict) -> str:
    """ "1015.3 kimg (16.4 h on 2 CPU cores, bf16)" from a model card's kimg, hours and hardware."""
    kimg, hours, hardware = card.get("kimg"), card.get("hours"), card.get("hardware")
    if kimg is None:
        return "not stated"
    how = f"{hours:.1f} h" if isinstance(hours, (int, float)) else ""
    if hardware:
        how = f"{how} on {hardware}" if how else str(hardware)
    return f"{kimg} kimg ({how})" if how else f"{kimg} kimg"


def _metric_name(key: str) -> str:
    """A model card's metric key for people: "SWDx1e3_64" -> "SWD x10^3 (64 px)", "FID_own_D_features" ->
    "FID (own D features)", "diversity_ratio" -> "diversity ratio"."""
    m = re.fullmatch(r"(SWD|KID)x1e3_?(.*)", key)
    if m:
        kind, rest = m.groups()
        where = "mean" if rest == "avg" else f"{rest} px" if rest.isdigit() else rest.replace("_", " ")
        return f"{kind} \u00d710\u00b3" + (f" ({where})" if where else "")
    m = re.fullmatch(r"FID_?(.*)", key)
    if m:
        return "FID" + (f" ({m.group(1).replace('_', ' ')})" if m.group(1) else "")
    return key.replace("_", " ")


def _describe(value: object) -> str:
    """A model card value for people: dictionaries as "name value" pairs, numbers with 3 significant digits."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_describe(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
