"""Anchors: the latents of a model's training pictures, for samples drawn around real pictures.

A generator trained on a few thousand pictures of distinct things (every emoji is in the data once, in up to six
skin tones) draws recognisable pictures near the latents of those pictures and blurred mixtures far from them.
Anchored sampling (instance-conditioned like IC-GAN, Casanova et al. 2021; multi-modal truncation, Mokady et al.
2022) keeps every sample near one: a seed draws an anchor and a z, and its latent is
``anchor.lerp(G.mapping(z, c), psi)`` -- truncation towards a training picture's latent instead of the mean w.

An anchor is a W+ latent with ``rows`` distinct rows (each shared by neighbouring ws, :func:`row_index`), fitted to
its picture with the generator fixed (:func:`fit_anchors`, a generator of progress that can stop between batches
and resume: the bank records which anchors are fitted). A bank travels in a model file as its ``anchors``
component (:meth:`AnchorBank.to_component`: int8 rows, or each anchor's mean row plus 4-bit row offsets).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ganmodels.generate import seed_to_z
from ganmodels.losses import psnr
from ganmodels.networks import Generator, one_hot_c

COMPONENT = "anchors"  # the model-file component name (and kind) of a bank
BANK_FORMAT = "gan-editor-anchors/1"  # a bank being fitted (AnchorBank.save)
DEFAULT_PSI = 0.05  # truncation towards the anchor for anchored samples: its picture, varied a little (fitted
# W+ anchors lie off the mapping's outputs: at 0.15 much of the picture is already lost)


def row_index(num_ws: int, rows: int) -> torch.Tensor:
    """Which of an anchor's ``rows`` rows each of G's ``num_ws`` ws takes: int64 [num_ws], non-decreasing, every
    row used (neighbouring ws share one, e.g. 10 ws in 5 rows: 0 0 1 1 2 2 3 3 4 4)."""
    if not 1 <= rows <= num_ws:
        raise ValueError(f"an anchor needs 1 to {num_ws} rows, not {rows}")
    return torch.arange(num_ws) * rows // num_ws


@dataclasses.dataclass
class AnchorBank:
    """Latents of N pictures: ``ws`` float32 [N, rows, w_dim], ``labels`` int64 [N] (their classes; -1 for an
    unconditional model), ``fitted`` bool [N] (which anchors :func:`fit_anchors` has finished) and ``psnr``
    float32 [N] (how closely each fitted anchor draws its picture, dB; NaN when not fitted)."""

    ws: torch.Tensor  # [N, rows, w_dim]
    labels: torch.Tensor  # [N]
    fitted: torch.Tensor  # [N] bool
    psnr: torch.Tensor  # [N]

    def __post_init__(self) -> None:
        if self.ws.ndim != 3:
            raise ValueError(f"anchor latents must be [N, rows, w_dim], not {list(self.ws.shape)}")
        n = len(self.ws)
        for name in ("labels", "fitted", "psnr"):
            if tuple(getattr(self, name).shape) != (n,):
                raise ValueError(f"anchor {name} must be [{n}], not {list(getattr(self, name).shape)}")

    @classmethod
    def start(cls, G: Generator, labels: Sequence[int] | np.ndarray | torch.Tensor, *, rows: int) -> AnchorBank:
        """A bank of unfitted anchors for pictures with these classes, each starting at its class's mean w (the
        mean w for an unconditional G or label -1)."""
        from ganmodels.generate import truncation_centre

        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
        row_index(G.num_ws, rows)  # checks rows
        centres = {int(k): truncation_centre(G, int(k)).detach().float().cpu() for k in labels.unique()}
        ws = torch.stack([centres[int(k)] for k in labels]) if len(labels) else torch.zeros(0, G.w_dim)
        n = len(labels)
        return cls(
            ws=ws[:, None].expand(-1, rows, -1).clone(),
            labels=labels if G.c_dim > 0 else torch.full([n], -1, dtype=torch.long),
            fitted=torch.zeros(n, dtype=torch.bool),
            psnr=torch.full([n], math.nan),
        )

    @property
    def rows(self) -> int:
        return self.ws.shape[1]

    def __len__(self) -> int:
        return len(self.ws)

    def subset(self, index: torch.Tensor | Sequence[int]) -> AnchorBank:
        """The anchors ``index`` (in that order) as a bank of their own."""
        i = torch.as_tensor(index, dtype=torch.long)
        return AnchorBank(ws=self.ws[i], labels=self.labels[i], fitted=self.fitted[i], psnr=self.psnr[i])

    def full_ws(self, index: torch.Tensor | Sequence[int], num_ws: int) -> torch.Tensor:
        """The anchors ``index`` as G's latents: [len(index), num_ws, w_dim]."""
        return self.ws[torch.as_tensor(index, dtype=torch.long)][:, row_index(num_ws, self.rows)]

    def to_component(self, *, compact: bool = False) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
        """(kind, config, tensors) for ``save_model(components={"anchors": ...}, quantize=["anchors"])``; only
        fitted anchors travel.

        ``compact`` stores each anchor as the mean of its rows ``mean`` [N, w_dim] (int8 in the file) plus the rows'
        offsets from it in 4 bits (``offsets4`` uint8 [N, rows * w_dim / 2], two per byte, with a scale per row in
        ``offsets_scale`` [N * rows]): the offsets are small beside the mean (about a third), so this costs little
        for about 0.7 of the size of int8 rows.
        """
        keep = self.fitted
        ws = self.ws[keep].float()  # [N, rows, w_dim]
        config: dict[str, Any] = {
            "rows": self.rows,
            "count": int(keep.sum()),
            "mean_psnr_db": round(float(self.psnr[keep].mean()), 2),
        }
        tensors = {"labels": self.labels[keep].clone(), "psnr": self.psnr[keep].clone()}
        if not compact:
            tensors["ws"] = ws.contiguous()
        else:
            if ws.shape[2] % 2:
                raise ValueError("4-bit offsets need an even w_dim")
            mean = ws.mean(1)  # [N, w_dim]
            offsets = ws - mean[:, None]  # [N, rows, w_dim]
            scale = (offsets.abs().amax(2) / 7).clamp_min(1e-12)  # [N, rows]
            q = (torch.round(offsets / scale[..., None]).clamp(-7, 7) + 8).to(torch.uint8).flatten(1)  # 1..15
            tensors.update(
                mean=mean.contiguous(),
                offsets4=(q[:, 0::2] | (q[:, 1::2] << 4)).contiguous(),  # [N, rows * w_dim / 2]
                offsets_scale=scale.flatten().contiguous(),  # (1-D: kept as it is, not int8)
            )
        return COMPONENT, config, tensors

    @classmethod
    def from_component(cls, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> AnchorBank:
        """A bank from a model file's ``anchors`` component (all fitted). Raises ValueError when it is malformed."""
        try:
            labels = tensors["labels"].long()
            if "ws" in tensors:
                ws = tensors["ws"].float()
            else:  # mean + 4-bit offsets
                rows = int(config["rows"])
                mean, packed, scale = tensors["mean"].float(), tensors["offsets4"], tensors["offsets_scale"].float()
                n, w_dim = mean.shape
                if packed.dtype != torch.uint8 or packed.shape != (n, rows * w_dim // 2) or scale.shape != (n * rows,):
                    raise ValueError(
                        f"mean {list(mean.shape)}, offsets {list(packed.shape)}, scales {list(scale.shape)}"
                    )
                q = torch.stack([packed & 15, packed >> 4], 2).view(n, rows, w_dim).float() - 8  # [N, rows, w_dim]
                ws = mean[:, None] + q * scale.view(n, rows, 1)
        except KeyError as e:
            raise ValueError(f"the anchors have no {e.args[0]!r}") from None
        except (TypeError, RuntimeError) as e:
            raise ValueError(f"the anchors' tensors do not fit together ({e})") from None
        psnr_db = tensors["psnr"].float() if "psnr" in tensors else torch.full([len(ws)], math.nan)
        if ws.ndim != 3 or len(labels) != len(ws) or len(psnr_db) != len(ws):
            raise ValueError(f"latents {list(ws.shape)} for {len(labels)} labels")
        if not torch.isfinite(ws).all():
            raise ValueError("the anchors' latents are not all finite")
        return cls(ws=ws, labels=labels, fitted=torch.ones(len(ws), dtype=torch.bool), psnr=psnr_db)

    def save(self, path: Any, *, about: Mapping[str, str]) -> None:
        """Write the whole bank (fitted or not) to a safetensors file, with ``about`` (e.g. the model and data it
        belongs to) as metadata: a fit that stopped resumes from it (:meth:`load`)."""
        from ganmodels.stio import save_safetensors

        tensors = {"ws": self.ws, "labels": self.labels, "fitted": self.fitted, "psnr": self.psnr}
        save_safetensors(path, tensors, {"format": BANK_FORMAT, **about})

    @classmethod
    def load(cls, path: Any) -> tuple[AnchorBank, dict[str, str]]:
        """A bank :meth:`save` wrote, and its metadata. Raises ValueError for any other file."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                about = dict(f.metadata() or {})
                if about.get("format") != BANK_FORMAT:
                    raise ValueError(f"{path} is not a bank of anchors")
                t = {k: f.get_tensor(k) for k in ("ws", "labels", "fitted", "psnr")}
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{path} is not a readable bank of anchors ({e})") from None
        return cls(ws=t["ws"].float(), labels=t["labels"].long(), fitted=t["fitted"].bool(), psnr=t["psnr"]), about

    def check(self, G: Generator) -> str | None:
        """Why this bank does not fit G (None when it does)."""
        if self.ws.shape[2] != G.w_dim:
            return f"its latents have {self.ws.shape[2]} numbers, the model's {G.w_dim}"
        if not 1 <= self.rows <= G.num_ws:
            return f"its latents have {self.rows} rows, the model has {G.num_ws} ws"
        if len(self) == 0:
            return "it holds no anchors"
        if G.c_dim > 0 and not ((self.labels >= 0) & (self.labels < G.c_dim)).all():
            return f"its classes are not all among the model's {G.c_dim}"
        return None


@dataclasses.dataclass(frozen=True)
class AnchorFitStep:
    """Progress of :func:`fit_anchors`: after a finished batch, ``done`` of ``total`` anchors fitted; ``psnr``
    the batch's mean dB."""

    done: int
    total: int
    psnr: float


def fit_anchors(
    G: Generator,
    images: torch.Tensor | np.ndarray,
    bank: AnchorBank,
    *,
    steps: int = 150,
    lr: float = 0.02,
    batch: int = 32,
    autocast: bool = True,
) -> Iterator[AnchorFitStep]:
    """Fit the bank's unfitted anchors to their ``images`` (uint8 [N, R, R, 3] or float [N, 3, R, R] in [-1, 1])
    with G fixed, a batch at a time: Adam on the anchors' rows from where they are, minimising the Laplacian
    pyramid L1 + MSE between G's picture and the target. Yields after every batch; fills ``bank`` in place, so
    a stopped fit resumes with the same bank."""
    from ganmodels.training import pyramid_l1

    if len(images) != len(bank):
        raise ValueError(f"{len(images)} pictures for {len(bank)} anchors")
    problem = bank.check(G)
    if problem is not None:
        raise ValueError(f"the anchors do not fit the model: {problem}")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # [N, 3, R, R]
    if images.shape[-1] != G.img_resolution:
        raise ValueError(f"the pictures are {images.shape[-1]} px, the model draws {G.img_resolution} px")
    device = next(G.parameters()).device
    use_autocast = autocast and device.type == "cpu"
    idx_ws = row_index(G.num_ws, bank.rows).to(device)
    todo = (~bank.fitted).nonzero().flatten()
    G.requires_grad_(False)
    for start in range(0, len(todo), batch):
        rows = todo[start : start + batch]
        target = images[rows].to(device).float()  # [B, 3, R, R]
        ws = bank.ws[rows].to(device).clone().requires_grad_(True)  # [B, rows, w_dim]
        opt = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.999))
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_autocast):
                img = G.synthesis(ws[:, idx_ws], noise_mode="const")  # [B, 3, R, R]
            loss = pyramid_l1(img.float(), target) + (img.float() - target).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            drawn = G.synthesis(ws[:, idx_ws], noise_mode="const").float()
            bank.psnr[rows] = psnr(drawn, target).cpu()
        bank.ws[rows] = ws.detach().cpu()
        bank.fitted[rows] = True
        yield AnchorFitStep(done=int(bank.fitted.sum()), total=len(bank), psnr=float(bank.psnr[rows].mean()))


@torch.no_grad()
def bank_psnr(G: Generator, bank: AnchorBank, images: np.ndarray, *, batch: int = 64) -> torch.Tensor:
    """How closely each anchor draws its picture (uint8 [N, R, R, 3]): PSNR in dB, float32 [N]."""
    out = []
    for i in range(0, len(bank), batch):
        rows = torch.arange(i, min(i + batch, len(bank)))
        target = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1  # [B, 3, R, R]
        drawn = G.synthesis(bank.full_ws(rows, G.num_ws).to(next(G.parameters()).device), noise_mode="const")
        out.append(psnr(drawn.float().cpu(), target))
    return torch.cat(out) if out else torch.zeros(0)


def as_stored(component: tuple[str, dict[str, Any], dict[str, torch.Tensor]]) -> AnchorBank:
    """The bank a model file gives back for ``component`` saved with int8 storage (what ``save_model`` does to its
    floating-point tensors of 2 or more dimensions), to measure what ships."""
    from ganmodels.modelfile import dequantize_rows, quantize_rows

    _, config, tensors = component
    stored = {
        k: dequantize_rows(*quantize_rows(v)) if v.is_floating_point() and v.ndim >= 2 else v
        for k, v in tensors.items()
    }
    return AnchorBank.from_component(config, stored)


def generator_fingerprint(G: Generator) -> str:
    """SHA-256 of G's weights: a bank being fitted belongs to one generator."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def seed_to_anchor(seed: int, G: Generator, count: int) -> int:
    """The anchor a seed draws (uniformly), from the same ``RandomState(seed)`` right after the seed's z, so z stays
    NVIDIA-compatible (:func:`ganmodels.generate.seed_to_z`)."""
    rs = np.random.RandomState(seed)
    rs.randn(1, G.z_dim)
    return int(rs.randint(count))


def pick_anchor(seed: int, G: Generator, bank: AnchorBank, *, class_index: int | None = None) -> int | None:
    """The anchor a seed draws (:func:`seed_to_anchor`), among the anchors of ``class_index`` when given (None when
    that class has none)."""
    if class_index is None:
        return seed_to_anchor(seed, G, len(bank))
    members = (bank.labels == class_index).nonzero().flatten().tolist()
    return members[seed_to_anchor(seed, G, len(members))] if members else None


@torch.no_grad()
def anchored_ws(
    G: Generator,
    bank: AnchorBank,
    seeds: Sequence[int],
    *,
    truncation_psi: float = DEFAULT_PSI,
    anchors: Sequence[int] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Seeds' latents around anchors: ([N, num_ws, w_dim], the anchor of each). Each seed draws an anchor
    (:func:`seed_to_anchor`, or ``anchors`` gives them) and a z mapped in the anchor's class; the latent is
    ``anchor.lerp(mapping(z, c), truncation_psi)``: 0 draws the anchor's own picture, 1 a plain sample."""
    problem = bank.check(G)
    if problem is not None:
        raise ValueError(f"the anchors do not fit the model: {problem}")
    picks = list(anchors) if anchors is not None else [seed_to_anchor(s, G, len(bank)) for s in seeds]
    if len(picks) != len(seeds) or not all(0 <= a < len(bank) for a in picks):
        raise ValueError(f"give one anchor (0 to {len(bank) - 1}) per seed")
    device = next(G.parameters()).device
    z = torch.cat([seed_to_z(s, G.z_dim) for s in seeds]).to(device)  # [N, z_dim]
    if G.c_dim > 0:
        c = one_hot_c(G, [int(bank.labels[a]) for a in picks])  # [N, c_dim]
    else:
        c = torch.zeros([len(seeds), 0], device=device)
    ws = G.mapping(z, c)  # [N, num_ws, w_dim]
    centres = bank.full_ws(picks, G.num_ws).to(device)  # [N, num_ws, w_dim]
    return centres.lerp(ws, truncation_psi), picks


def read_anchors(path: Any, G: Generator) -> AnchorBank:
    """The anchor bank a model file carries for its generator ``G``. Raises ``ModelFileError`` when the file has
    none, or when it is broken or does not fit ``G``."""
    from ganmodels.modelfile import ModelFileError, load_component

    kind, config, tensors = load_component(path, COMPONENT)
    if kind != COMPONENT:
        raise ModelFileError(f"the {COMPONENT!r} component is a {kind!r}, not an anchor bank")
    try:
        bank = AnchorBank.from_component(config, tensors)
    except ValueError as e:
        raise ModelFileError(f"they are damaged: {e}") from None
    problem = bank.check(G)
    if problem is not None:
        raise ModelFileError(f"they do not fit the generator: {problem}")
    return bank
