"""``gan-inpainter``: a feed-forward GAN inpainting network (gated convolutions + SN-PatchGAN).

The network follows DeepFill v2 (Yu et al. 2019) in a size a CPU can afford: gated convolutions (every layer
learns a soft validity gate, which is how free-form holes are handled), an encoder to 1/8 of the input size,
dilated gated convolutions there for a receptive field of the whole picture, and a decoder with skips from the
encoder. It is fully convolutional: it runs at the picture's own resolution (any multiple of 8, inputs are
padded), so 256 px emoji are filled at 256 px, not at the generator's 64 px.

Training (``InpainterTrainer``) is self-supervised on domain images with random free-form and box masks: L1 in
the hole and (weakly) outside it, plus a hinge loss from a spectral-normalised patch discriminator that sees the
composite and the mask. The network does not depend on the StyleGAN generator; it is stored in the model file
as a component because both serve the same domain.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open

from ganmodels.inpainting import Inpainter, InpaintStep, check_inputs, feather, keep_known, poisson_blend
from ganmodels.losses import masked_l1, psnr
from ganmodels.masks import free_form_mask
from ganmodels.stio import save_safetensors
from ganmodels.training import load_optimizer, optimizer_tensors, trained_seconds

INPAINTER_KIND = "gated-unet"
TRAIN_FORMAT = "gan-editor-inpainter-train/1"


@dataclasses.dataclass(frozen=True)
class InpaintNetConfig:
    """Width and bottleneck of the network; ``channels`` is the width at 1/2 resolution (x2 and x4 deeper)."""

    channels: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "dilations": list(self.dilations)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InpaintNetConfig:
        unknown = set(d) - {"channels", "dilations"}
        if unknown:
            raise ValueError(f"unknown inpainter options {sorted(unknown)}")
        channels = int(d.get("channels", 32))
        dilations = tuple(int(x) for x in d.get("dilations", (1, 2, 4, 8, 16)))
        if not 4 <= channels <= 512 or not dilations or not all(1 <= x <= 64 for x in dilations):
            raise ValueError(f"implausible inpainter options {d}")
        return cls(channels=channels, dilations=dilations)


class GatedConv(nn.Module):
    """conv -> ELU(features) * sigmoid(gate) (Yu et al. 2019)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride=stride, padding=pad, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self.conv(x).chunk(2, dim=1)
        return F.elu(f) * torch.sigmoid(g)


class InpaintNet(nn.Module):
    """(image with hole, mask) -> filled image, both at the input's resolution (a multiple of 8)."""

    multiple = 8

    def __init__(self, config: InpaintNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or InpaintNetConfig()
        c = config.channels
        self.e1 = GatedConv(4, c, 5, stride=2)  # R/2
        self.e2 = GatedConv(c, 2 * c, stride=2)  # R/4
        self.e3 = GatedConv(2 * c, 2 * c)  # R/4
        self.e4 = GatedConv(2 * c, 4 * c, stride=2)  # R/8
        self.mid = nn.ModuleList([GatedConv(4 * c, 4 * c, dilation=d) for d in config.dilations])
        self.d4 = GatedConv(4 * c, 2 * c)  # R/8, then up
        self.d3 = GatedConv(4 * c, 2 * c)  # R/4 with the e3 skip
        self.d2 = GatedConv(2 * c, c)  # R/4, then up
        self.d1 = GatedConv(2 * c, c)  # R/2 with the e1 skip
        self.out = nn.Conv2d(c + 4, 3, 3, padding=1)  # R, sees the input again for crisp hole borders

    def forward(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """img [N, 3, R, R] in [-1, 1] (hole content ignored), mask [N, 1, R, R] (1 = fill) -> [N, 3, R, R]."""
        h, w = img.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"the inpainter needs sizes that are multiples of {self.multiple}, got {w}x{h}")
        x = torch.cat([img * (1 - mask), mask], dim=1)  # [N, 4, R, R]
        e1 = self.e1(x)
        e3 = self.e3(self.e2(e1))
        y = self.e4(e3)
        for layer in self.mid:
            y = y + layer(y)
        y = F.interpolate(self.d4(y), scale_factor=2.0, mode="nearest")
        y = self.d3(torch.cat([y, e3], dim=1))
        y = F.interpolate(self.d2(y), scale_factor=2.0, mode="nearest")
        y = self.d1(torch.cat([y, e1], dim=1))
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.out(torch.cat([y, x], dim=1))


class PatchDiscriminator(nn.Module):
    """SN-PatchGAN: spectral-normalised strided convolutions on (image, mask), one logit per patch."""

    def __init__(self, *, channels: int = 32, layers: int = 5) -> None:
        super().__init__()
        convs = []
        cin = 4
        for i in range(layers):
            cout = channels * min(2**i, 4)
            convs.append(nn.utils.parametrizations.spectral_norm(nn.Conv2d(cin, cout, 5, stride=2, padding=2)))
            cin = cout
        self.convs = nn.ModuleList(convs)

    def forward(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([img, mask], dim=1)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.leaky_relu(x, 0.2)
        return x  # [N, C, R/32, R/32]


def new_inpainter_net(*, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 16)) -> InpaintNet:
    """An untrained inpainting network."""
    return InpaintNet(InpaintNetConfig(channels=channels, dilations=dilations))


def inpainter_from_state(config: dict[str, Any], state: dict[str, torch.Tensor]) -> InpaintNet:
    """Rebuild a stored network (config from the model file's JSON, weights from its tensors)."""
    net = InpaintNet(InpaintNetConfig.from_dict(config))
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


def inpainter_component(net: InpaintNet) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(kind, config, state_dict) for storing the network in a model file."""
    return INPAINTER_KIND, net.config.to_dict(), {k: v.detach().cpu() for k, v in net.state_dict().items()}


@torch.no_grad()
def fill(net: InpaintNet, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Network output for any size: reflect-pads to a multiple of 8 and crops back.  # [N, 3, H, W]"""
    h, w = img.shape[-2:]
    m = net.multiple
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        img = F.pad(img, [0, pw, 0, ph], mode=mode)
        mask = F.pad(mask, [0, pw, 0, ph], mode=mode)
    return net(img, mask)[..., :h, :w]


# --------------------------------------------------------------------------------------------------------------
# Inference


class GanInpainter(Inpainter):
    """Feed-forward fill at the picture's own scale: a crop around the mask (shrunk when larger than
    ``max_size``), one network pass, blended back."""

    needs_model = True

    def __init__(
        self, net: InpaintNet, *, blend: str = "feather", margin: float = 0.5, max_size: int = 512, G: Any = None
    ) -> None:
        if blend not in ("feather", "poisson", "none"):
            raise ValueError("blend must be feather, poisson or none")
        del G  # accepted for a uniform registry signature; the network does not use the generator
        self.net = net.eval()
        self.blend = blend
        self.margin = margin
        self.max_size = max_size
        self.name = "gan-inpainter"
        self.description = "Trained feed-forward GAN inpainter (one pass; images of the model's domain)"

    def _box(self, mask: np.ndarray) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the region given to the network: the mask's box plus a margin."""
        h, w = mask.shape
        ys, xs = np.nonzero(mask > 0)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        pad = math.ceil(self.margin * max(y1 - y0, x1 - x0)) + 8
        return max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)

    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        image, mask = check_inputs(image, mask)
        if not (mask > 0).any():
            yield InpaintStep(1, 1, "nothing to fill", preview=image, result=image.copy())
            return
        top, left, bottom, right = self._box(mask)
        crop = image[top:bottom, left:right]
        crop_mask = mask[top:bottom, left:right]
        ch, cw = crop_mask.shape
        scale = min(1.0, self.max_size / max(ch, cw))
        if scale < 1.0:
            size = (max(8, round(cw * scale)), max(8, round(ch * scale)))
            crop_in = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            mask_in = cv2.resize(crop_mask, size, interpolation=cv2.INTER_AREA)
        else:
            crop_in, mask_in = crop, crop_mask
        device = next(self.net.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(crop_in)).permute(2, 0, 1)[None].to(device) * 2 - 1  # [1, 3, h, w]
        m = (torch.from_numpy(np.ascontiguousarray(mask_in))[None, None].to(device) > 0).float()  # [1, 1, h, w]
        out = fill(self.net, x, m)
        gen = ((out[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
        if scale < 1.0:
            gen = np.clip(cv2.resize(gen, (cw, ch), interpolation=cv2.INTER_CUBIC), 0, 1)
        filled = image.copy()
        filled[top:bottom, left:right] = gen
        if self.blend == "poisson":
            result = poisson_blend(image, filled, mask)
        elif self.blend == "feather":
            result = keep_known(image, filled, feather(mask, radius=max(1.5, 1.0 / scale)))
        else:
            result = keep_known(image, filled, mask)
        yield InpaintStep(1, 1, "done", preview=result, result=result)


# --------------------------------------------------------------------------------------------------------------
# Training


@dataclasses.dataclass(frozen=True)
class InpainterTrainOptions:
    """Hyper-parameters of ``InpainterTrainer`` (stored in its checkpoints)."""

    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    d_lr: float = 2e-4
    hole_weight: float = 1.0
    valid_weight: float = 0.2
    adv_weight: float = 0.01
    area_range: tuple[float, float] = (0.1, 0.5)
    native_fraction: float = 0.5  # share of crops at the data's own scale (the rest: whole images downscaled)
    holdout_every: int = 20  # images with index % holdout_every == 0 are never trained on (0: use all)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["area_range"] = list(self.area_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InpainterTrainOptions:
        d = dict(d)
        if "area_range" in d:
            d["area_range"] = tuple(d["area_range"])
        return cls(**d)


def holdout_indices(n: int, every: int) -> np.ndarray:
    """Indices of the images kept out of inpainter training (and used for held-out evaluation)."""
    return np.arange(0, n, every) if every > 0 else np.zeros(0, np.int64)


@dataclasses.dataclass(frozen=True)
class InpainterTrainStep:
    step: int
    num_steps: int
    losses: dict[str, float]
    psnr_hole: float
    preview: np.ndarray | None = None  # uint8 [rows, cols, 3] (input | output | target) when requested

    @property
    def fraction(self) -> float:
        return self.step / max(self.num_steps, 1)


class InpainterTrainer:
    """Networks, optimisers, random state and counters of an inpainter training run; ``run`` trains."""

    def __init__(
        self,
        images: np.ndarray,
        *,
        options: InpainterTrainOptions | None = None,
        net: InpaintNet | None = None,
        net_config: InpaintNetConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        """images: uint8 [N, R, R, 3] domain pictures (R >= crop)."""
        self.options = opt = options or InpainterTrainOptions()
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"training images must be uint8 [N, R, R, 3], got {images.dtype} {images.shape}")
        if images.shape[1] < opt.crop or images.shape[2] < opt.crop or opt.crop % InpaintNet.multiple:
            raise ValueError(f"crop {opt.crop} must be a multiple of 8 no larger than the {images.shape[1]}px images")
        self.images = images
        keep = np.setdiff1d(np.arange(len(images)), holdout_indices(len(images), opt.holdout_every))
        if len(keep) == 0:
            raise ValueError("no training images left after the hold-out")
        self.train_indices = keep
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(opt.seed)
            # a network loaded from a model file comes frozen (requires_grad off): fine-tuning needs it on
            self.net = (net or InpaintNet(net_config)).to(self.device).train().requires_grad_(True)
            self.D = PatchDiscriminator(channels=max(16, self.net.config.channels)).to(self.device).train()
        self.opt_net = torch.optim.Adam(self.net.parameters(), lr=opt.lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=opt.d_lr, betas=(0.5, 0.999))
        self.rng = np.random.default_rng(opt.seed)
        self.step = 0
        self.seconds = 0.0

    # ---- data
    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [B, 3, crop, crop] in [-1, 1], masks [B, 1, crop, crop]) drawn from ``self.rng``."""
        opt, rng = self.options, self.rng
        crop = opt.crop
        res = self.images.shape[1]
        imgs, masks = [], []
        for _ in range(opt.batch_size):
            img = self.images[int(rng.choice(self.train_indices))]
            if rng.random() < opt.native_fraction or res == crop:
                y, x = int(rng.integers(0, res - crop + 1)), int(rng.integers(0, self.images.shape[2] - crop + 1))
                img = img[y : y + crop, x : x + crop]
                mask_scale = 1.0  # strokes as wide as on a 256 px picture at this scale
            else:
                img = cv2.resize(img, (crop, crop), interpolation=cv2.INTER_AREA)
                mask_scale = crop / 256
            if rng.random() < 0.5:
                img = img[:, ::-1]
            imgs.append(np.ascontiguousarray(img))
            masks.append(free_form_mask(crop, crop, rng=rng, area_range=opt.area_range, scale=mask_scale))
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # [B, 3, c, c]
        m = torch.from_numpy(np.stack(masks))[:, None]  # [B, 1, c, c]
        return x.to(self.device), m.to(self.device)

    # ---- one step
    def train_step(self, img: torch.Tensor, mask: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """One network step and one discriminator step; returns (losses, network output)."""
        opt = self.options
        out = self.net(img, mask)  # [B, 3, c, c]
        comp = out * mask + img * (1 - mask)
        losses = {
            "hole": masked_l1(out, img, mask).mean() * opt.hole_weight,
            "valid": masked_l1(out, img, 1 - mask).mean() * opt.valid_weight,
        }
        if opt.adv_weight > 0:
            self.D.requires_grad_(False)
            losses["adv"] = -self.D(comp, mask).mean() * opt.adv_weight
            self.D.requires_grad_(True)
        loss = sum(losses.values())
        self.opt_net.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_net.step()
        result = {k: float(v.detach()) for k, v in losses.items()}
        if opt.adv_weight > 0:
            d_real = self.D(img, mask)
            d_fake = self.D(comp.detach(), mask)
            loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_D.step()
            result["D"] = float(loss_d.detach())
        self.step += 1
        return result, out.detach()

    def run(self, num_steps: int, *, preview_every: int = 0) -> Iterator[InpainterTrainStep]:
        """Train until ``self.step == num_steps``, yielding after every step (cancel by not iterating on)."""
        self.net.train()
        while self.step < num_steps:
            t0, c0 = time.perf_counter(), time.process_time()
            img, mask = self.sample_batch()
            losses, out = self.train_step(img, mask)
            self.seconds += trained_seconds(time.perf_counter() - t0, time.process_time() - c0)
            preview = None
            if preview_every and self.step % preview_every == 0:
                preview = preview_grid(img, mask, out)
            yield InpainterTrainStep(
                step=self.step,
                num_steps=num_steps,
                losses=losses,
                psnr_hole=float(psnr(out.clamp(-1, 1), img, weight=mask).mean()),
                preview=preview,
            )
        self.net.eval()

    @torch.no_grad()
    def evaluate(self, indices: np.ndarray, *, area_range: tuple[float, float] = (0.1, 0.4), seed: int = 1) -> float:
        """Mean PSNR (dB, whole image, composite) on the given images with fixed masks at full size."""
        self.net.eval()
        rng = np.random.default_rng(seed)
        scores = []
        for i in indices:
            img = torch.from_numpy(self.images[int(i)]).permute(2, 0, 1)[None].float().div(127.5).sub(1)
            h, w = img.shape[-2:]
            m = torch.from_numpy(free_form_mask(h, w, rng=rng, area_range=area_range))[None, None]
            img, m = img.to(self.device), m.to(self.device)
            out = fill(self.net, img, m).clamp(-1, 1)
            scores.append(float(psnr(out * m + img * (1 - m), img)))
        self.net.train()
        return float(np.mean(scores)) if scores else float("nan")

    # ---- checkpoints
    def save(self, path: str | Path) -> Path:
        """A resumable snapshot (networks, optimisers, random state, counters)."""
        tensors: dict[str, torch.Tensor] = {}
        for name, mod in (("net", self.net), ("D", self.D)):
            for k, v in mod.state_dict().items():
                tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
        metas = {}
        for name, o in (("opt_net", self.opt_net), ("opt_D", self.opt_D)):
            t, groups = optimizer_tensors(name, o)
            tensors.update(t)
            metas[name] = json.dumps(groups)
        meta = {
            "format": TRAIN_FORMAT,
            "net_config": json.dumps(self.net.config.to_dict()),
            "options": json.dumps(self.options.to_dict()),
            "counters": json.dumps({"step": self.step, "seconds": self.seconds}),
            "rng": json.dumps(self.rng.bit_generator.state),
            **metas,
        }
        return save_safetensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, images: np.ndarray, *, device: torch.device | str = "cpu") -> InpainterTrainer:
        """Resume a run saved by ``save`` (the options are the run's own)."""
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != TRAIN_FORMAT:
                raise ValueError(f"{Path(path).name} is not an inpainter training snapshot")
            trainer = cls(
                images,
                options=InpainterTrainOptions.from_dict(json.loads(meta["options"])),
                net_config=InpaintNetConfig.from_dict(json.loads(meta["net_config"])),
                device=device,
            )
            for name, mod in (("net", trainer.net), ("D", trainer.D)):
                pre = f"{name}."
                mod.load_state_dict({k[len(pre) :]: f.get_tensor(k) for k in f.keys() if k.startswith(pre)})
            for name, o in (("opt_net", trainer.opt_net), ("opt_D", trainer.opt_D)):
                load_optimizer(o, name, f, json.loads(meta[name]))
        counters = json.loads(meta["counters"])
        trainer.step = int(counters["step"])
        trainer.seconds = float(counters["seconds"])
        trainer.rng.bit_generator.state = json.loads(meta["rng"])
        return trainer


def preview_grid(img: torch.Tensor, mask: torch.Tensor, out: torch.Tensor, *, rows: int = 4) -> np.ndarray:
    """uint8 [rows * R, 3 * R, 3]: damaged input | composite | original, one sample per row."""
    n = min(rows, img.shape[0])
    damaged = img[:n] * (1 - mask[:n])
    comp = out[:n].clamp(-1, 1) * mask[:n] + img[:n] * (1 - mask[:n])
    grid = torch.cat([damaged, comp, img[:n]], dim=3)  # [n, 3, R, 3R]
    grid = torch.cat(list(grid), dim=1)  # [3, nR, 3R]
    return ((grid.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
