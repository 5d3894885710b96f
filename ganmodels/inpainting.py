"""Inpainting: one interface, several methods looked up by name.

Convention (everywhere): image RGB float32 [H, W, 3] in [0, 1]; mask float32 [H, W] in [0, 1], 1 = fill.
``Inpainter.run`` is a generator yielding ``InpaintStep`` progress records; the last one carries the result.
Pixels where the mask is 0 are returned unchanged, bit for bit, by every method.

Methods:
- ``telea``, ``ns``: OpenCV's fast marching (Telea 2004) and Navier-Stokes inpainting.
- ``fsr-fast``, ``fsr-best``: OpenCV contrib's frequency-selective reconstruction (``cv2.xphoto.inpaint``;
  its mask convention is the reverse: non-zero = known).
- ``gan-inpainter``: a trained feed-forward network (``ganmodels.ganinpainter``: gated convolutions trained with
  a patch discriminator), one pass per image at the image's own resolution.
- ``gan-inversion``: masked inversion into the loaded StyleGAN, then Poisson (or feathered) blending; for images
  of the model's domain at any size (a square crop around the mask is resized to the model and pasted back).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import torch


class InpaintError(ValueError):
    """Bad input for inpainting, with a message meant for the user."""


@dataclasses.dataclass(frozen=True)
class InpaintStep:
    """Progress; ``result`` (float32 [H, W, 3]) is set on the last step only."""

    step: int
    num_steps: int
    message: str = ""
    preview: np.ndarray | None = None
    result: np.ndarray | None = None

    @property
    def fraction(self) -> float:
        return self.step / max(self.num_steps, 1)


def check_inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise (image float32 [H, W, 3] in [0, 1], mask float32 [H, W] in [0, 1])."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InpaintError(f"the image must be [H, W, 3], got shape {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    image = np.clip(np.nan_to_num(image[..., :3].astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise InpaintError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
        )
    mask = np.clip(np.nan_to_num(mask.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    if not has_known_pixels(mask):
        raise InpaintError("the mask covers the whole picture: nothing is left to fill it from")
    return image, mask


def has_known_pixels(mask: np.ndarray) -> bool:
    """Whether a mask (float [H, W], 1 = fill) leaves any pixel to inpaint from: every method fills each pixel
    with a mask value above 0 (and blends the fill by that value), so only pixels at 0 are known."""
    return bool((np.asarray(mask) <= 0).any())


def keep_known(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Composite so that pixels with mask 0 are exactly the original; partial mask values blend."""
    m = mask[..., None]
    out = filled.astype(np.float32) * m + original * (1 - m)
    out[mask <= 0] = original[mask <= 0]
    return out.astype(np.float32)


class Inpainter(abc.ABC):
    """Fills masked pixels of an image."""

    name: str = ""
    description: str = ""
    needs_model: bool = False

    @abc.abstractmethod
    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        """Yield progress; the last step's ``result`` is the inpainted image."""

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run to completion and return the result."""
        result = None
        for step in self.run(image, mask):
            result = step.result if step.result is not None else result
        assert result is not None
        return result


# --------------------------------------------------------------------------------------------------------------
# Classical methods


def _to_u8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _binary(mask: np.ndarray) -> np.ndarray:
    """The hole to fill: every pixel a brush touched (soft values then blend the fill in ``keep_known``)."""
    return (mask > 0).astype(np.uint8)


class OpenCVInpainter(Inpainter):
    """cv2.inpaint with the Telea or Navier-Stokes method."""

    def __init__(self, *, method: str = "telea", radius: float = 5.0) -> None:
        if method not in ("telea", "ns"):
            raise ValueError("method must be telea or ns")
        self.method = method
        self.radius = radius
        self.name = method
        self.description = "OpenCV fast marching (Telea)" if method == "telea" else "OpenCV Navier-Stokes"

    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        image, mask = check_inputs(image, mask)
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        bgr = cv2.cvtColor(_to_u8(image), cv2.COLOR_RGB2BGR)
        out = cv2.inpaint(bgr, _binary(mask) * 255, self.radius, flag)
        filled = cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        yield InpaintStep(1, 1, "done", result=keep_known(image, filled, mask))


class FSRInpainter(Inpainter):
    """cv2.xphoto.inpaint frequency-selective reconstruction (mask convention reversed: non-zero = known)."""

    def __init__(self, *, quality: str = "fast") -> None:
        if quality not in ("fast", "best"):
            raise ValueError("quality must be fast or best")
        self.quality = quality
        self.name = f"fsr-{quality}"
        self.description = f"OpenCV frequency-selective reconstruction ({quality})"

    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        image, mask = check_inputs(image, mask)
        known = (1 - _binary(mask)).astype(np.uint8)  # xphoto: 1 = valid pixel
        bgr = cv2.cvtColor(_to_u8(image), cv2.COLOR_RGB2BGR)
        dst = np.zeros_like(bgr)
        flag = cv2.xphoto.INPAINT_FSR_FAST if self.quality == "fast" else cv2.xphoto.INPAINT_FSR_BEST
        cv2.xphoto.inpaint(bgr, known, dst, flag)
        filled = cv2.cvtColor(dst, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        yield InpaintStep(1, 1, "done", result=keep_known(image, filled, mask))


# --------------------------------------------------------------------------------------------------------------
# GAN inversion inpainting


def square_crop_box(mask: np.ndarray, *, margin: float = 0.5, min_size: int = 0) -> tuple[int, int, int]:
    """(top, left, size) of a square around the mask's bounding box, grown by ``margin`` of its size, inside
    the image when possible (the whole image when it is square and the mask is large)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0)
    if len(ys) == 0:
        raise InpaintError("the mask is empty: paint the area to fill first")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    size = int(max(y1 - y0, x1 - x0) * (1 + 2 * margin))
    size = max(size, min_size)
    size = min(size, max(h, w))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top = int(np.round(cy - size / 2))
    left = int(np.round(cx - size / 2))
    top = min(max(top, 0), max(h - size, 0))
    left = min(max(left, 0), max(w - size, 0))
    return top, left, size


def _crop_square(arr: np.ndarray, top: int, left: int, size: int, fill: float) -> np.ndarray:
    """Crop a size x size square, padding with ``fill`` where it leaves the image."""
    h, w = arr.shape[:2]
    out = np.full((size, size, *arr.shape[2:]), fill, dtype=arr.dtype)
    ys, xs = max(top, 0), max(left, 0)
    ye, xe = min(top + size, h), min(left + size, w)
    out[ys - top : ye - top, xs - left : xe - left] = arr[ys:ye, xs:xe]
    return out


def feather(mask: np.ndarray, *, radius: float) -> np.ndarray:
    """Blend weights that fade in over ``radius`` pixels inside the mask: 0 outside it (unmasked pixels stay
    exact), ``mask`` deep inside, a ramp towards the mask's edge."""
    if radius <= 0:
        return mask.astype(np.float32)
    inside = (mask > 0).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)  # distance to the nearest unmasked pixel
    return (mask * np.clip(dist / radius, 0, 1)).astype(np.float32)


class GanInversionInpainter(Inpainter):
    """Masked inversion of the surrounding pixels into a StyleGAN, then blending of the generated fill."""

    needs_model = True

    def __init__(
        self,
        G: Any,
        *,
        perceptual: Any = None,
        encoder: Any = None,
        num_steps: int = 200,
        tune_steps: int = 0,
        blend: str = "poisson",
        feather_px: float | None = None,
        margin: float = 0.5,
        seed: int = 0,
        preview_every: int = 10,
    ) -> None:
        if blend not in ("feather", "poisson", "none"):
            raise ValueError("blend must be feather, poisson or none")
        self.G = G
        self.perceptual = perceptual
        self.encoder = encoder
        if num_steps < 1 or tune_steps < 0:
            raise ValueError("num_steps must be at least 1 and tune_steps at least 0")
        self.num_steps = num_steps
        self.tune_steps = tune_steps
        self.blend = blend
        self.feather_px = feather_px
        self.margin = margin
        self.seed = seed
        self.preview_every = preview_every
        self.name = "gan-inversion"
        self.description = "Masked GAN inversion + blending (images of the model's domain)"

    def run(self, image: np.ndarray, mask: np.ndarray) -> Iterator[InpaintStep]:
        from ganmodels.inversion import image_to_tensor, invert

        image, mask = check_inputs(image, mask)
        res = self.G.img_resolution
        top, left, size = square_crop_box(mask, margin=self.margin)
        crop = _crop_square(image, top, left, size, 1.0)
        crop_mask = _crop_square(mask, top, left, size, 1.0)  # outside the image counts as unknown
        device = next(self.G.parameters()).device
        g = torch.Generator(device=device).manual_seed(self.seed)
        target = image_to_tensor(crop, resolution=res)
        small_mask = cv2.resize(crop_mask, (res, res), interpolation=cv2.INTER_AREA)
        kw: dict[str, Any] = dict(
            mask=small_mask,
            perceptual=self.perceptual,
            generator=g,
            preview_every=self.preview_every,
            ms_ssim_weight=0.2,
        )
        if self.encoder is not None:
            from ganmodels.encoder import encode

            kw["init_ws"] = encode(self.encoder, target * torch.from_numpy(1 - small_mask)[None, None])
        total = self.num_steps + self.tune_steps + 1
        last = None
        for last in invert(self.G, target, num_steps=self.num_steps, **kw):
            if last.step < last.num_steps:
                yield InpaintStep(last.step, total, f"inverting: PSNR {last.psnr:.1f} dB", preview=last.preview)
        assert last is not None and last.preview is not None
        fill = last.preview  # float32 [R, R, 3]
        if self.tune_steps:
            # Pivotal tuning on the known pixels: the tuned copy of G reproduces this picture's surroundings, so its
            # fill continues them (colours, outlines) instead of the nearest thing the model can draw.
            from ganmodels.inversion import pivotal_tuning, render, to_preview

            tuned = None
            for tuned in pivotal_tuning(
                self.G,
                last.ws,
                target,
                mask=small_mask,
                noise=last.noise,
                num_steps=self.tune_steps,
                perceptual=self.perceptual,
                preview_every=self.preview_every,
                generator=g,
            ):
                yield InpaintStep(
                    self.num_steps + tuned.step - 1, total, f"tuning: PSNR {tuned.psnr:.1f} dB", preview=tuned.preview
                )
            assert tuned is not None and tuned.weights is not None
            fill = to_preview(render(self.G, last.ws, noise=last.noise, weights=tuned.weights))
        gen = cv2.resize(fill, (size, size), interpolation=cv2.INTER_CUBIC if size > res else cv2.INTER_AREA)
        gen = np.clip(gen, 0, 1)
        # paste back into a full-size canvas
        h, w = mask.shape
        filled = image.copy()
        ys, xs = max(top, 0), max(left, 0)
        ye, xe = min(top + size, h), min(left + size, w)
        filled[ys:ye, xs:xe] = gen[ys - top : ye - top, xs - left : xe - left]
        radius = self.feather_px if self.feather_px is not None else max(1.5, size / res)
        if self.blend == "poisson":
            result = poisson_blend(image, filled, mask)
        elif self.blend == "feather":
            soft = feather(mask, radius=radius)
            result = keep_known(image, filled, soft)
        else:
            result = keep_known(image, filled, mask)
        yield InpaintStep(total, total, "done", preview=result, result=result)


def poisson_blend(
    image: np.ndarray, filled: np.ndarray, mask: np.ndarray, *, tol: float = 1e-3, max_iter: int = 5000
) -> np.ndarray:
    """Poisson image editing (Perez et al. 2003) of ``filled`` into ``image`` over the mask.

    Inside the mask the result keeps the gradients of ``filled`` and meets the known pixels around it without a seam:
    result = filled + c, where c is the harmonic (membrane) interpolation of ``image - filled`` from the known pixels
    next to the mask (the picture's own edge is a free, zero-flux boundary). Only known pixels set the boundary: what
    lies under the mask in ``image`` (the damage) is never used. c is solved over the mask's bounding box by
    conjugate gradients on the 5-point Laplacian, started from the solution at half resolution. Soft mask values
    blend as in :func:`keep_known`.
    """
    image = image.astype(np.float32)
    inside = mask > 0
    if not inside.any() or inside.all():
        return keep_known(image, filled, mask)
    ys, xs = np.nonzero(inside)
    h, w = mask.shape
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, h)
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, w)
    box = inside[y0:y1, x0:x1]  # [h', w'] unknowns; the box's border is known or the picture's edge
    diff = np.where(box[..., None], 0.0, image[y0:y1, x0:x1] - filled[y0:y1, x0:x1]).astype(np.float64)
    edges = (y0 == 0, y1 == h, x0 == 0, x1 == w)
    c = _membrane(diff, box, edges, tol=tol, max_iter=max_iter)  # [h', w', 3]
    out = filled.astype(np.float32).copy()
    out[y0:y1, x0:x1] += c.astype(np.float32)
    return keep_known(image, np.clip(out, 0, 1), mask)


def _neighbour_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 4 neighbours of every pixel of x [h, w, C] (none beyond the array)."""
    s = np.zeros_like(x)
    s[1:] += x[:-1]
    s[:-1] += x[1:]
    s[:, 1:] += x[:, :-1]
    s[:, :-1] += x[:, 1:]
    return s


def _membrane(
    values: np.ndarray, unknown: np.ndarray, edges: tuple[bool, bool, bool, bool], *, tol: float, max_iter: int
) -> np.ndarray:
    """Harmonic interpolation into the ``unknown`` pixels of the known ``values`` [h, w, C] (0 where unknown).

    ``edges`` (top, bottom, left, right): sides that are the picture's edge (zero flux); the array's other border
    pixels are known. Returns x [h, w, C], 0 at known pixels. Conjugate gradients, started from the same problem
    solved at half resolution when it is large (a few times fewer iterations).
    """
    h, w = unknown.shape
    deg = np.full((h, w), 4.0)  # neighbours inside the picture
    for side, sl in zip(edges, (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]), strict=True):
        if side:
            deg[sl] -= 1
    unk = unknown[..., None].astype(np.float64)
    x = np.zeros_like(values)
    if unknown.sum() > 256 and min(h, w) >= 8:
        # half resolution: a 2x2 block is unknown only when all of it is; a known one takes its known pixels' mean
        ph, pw = h % 2, w % 2
        v = np.pad(values, ((0, ph), (0, pw), (0, 0)), mode="edge")
        u = np.pad(unknown, ((0, ph), (0, pw)), mode="edge")
        kn = (~u).astype(np.float64)
        blocks = lambda a: a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2, *a.shape[2:]).sum((1, 3))  # noqa: E731
        count = blocks(kn)
        coarse_unknown = count == 0
        coarse_values = blocks(v * kn[..., None]) / np.maximum(count, 1)[..., None]
        xc = _membrane(coarse_values, coarse_unknown, edges, tol=tol, max_iter=max_iter)
        x = np.repeat(np.repeat(xc, 2, axis=0), 2, axis=1)[:h, :w] * unk

    def apply(z: np.ndarray) -> np.ndarray:  # -Laplacian restricted to the unknowns (z is 0 elsewhere)
        return (deg[..., None] * z - _neighbour_sum(z)) * unk

    b = _neighbour_sum(values) * unk  # the known neighbours' values move to the right-hand side
    r = b - apply(x)
    p = r.copy()
    rr = float((r * r).sum())
    stop = (tol**2) * max(float((b * b).sum()), 1e-20)
    for _ in range(max_iter):
        if rr <= stop:
            break
        ap = apply(p)
        pap = float((p * ap).sum())
        if pap <= 0:  # only a region with no known neighbour is left (nothing sets its offset)
            break
        alpha = rr / pap
        x += alpha * p
        r -= alpha * ap
        rr_new = float((r * r).sum())
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


# --------------------------------------------------------------------------------------------------------------
# Registry


_REGISTRY: dict[str, Callable[..., Inpainter]] = {
    "telea": lambda **kw: OpenCVInpainter(method="telea", **kw),
    "ns": lambda **kw: OpenCVInpainter(method="ns", **kw),
    "fsr-fast": lambda **kw: FSRInpainter(quality="fast", **kw),
    "fsr-best": lambda **kw: FSRInpainter(quality="best", **kw),
    "gan-inversion": lambda **kw: GanInversionInpainter(**kw),
    "gan-inpainter": lambda **kw: _gan_inpainter(**kw),
}


def _gan_inpainter(*, net: Any = None, **kw: Any) -> Inpainter:
    from ganmodels.ganinpainter import GanInpainter

    if net is None:
        raise InpaintError(
            "this model has no trained inpainter: use gan-inversion or train one (ganmodels train-inpainter)"
        )
    for unused in ("G", "num_steps", "perceptual", "encoder", "seed"):
        kw.pop(unused, None)
    return GanInpainter(net, **kw)


# Names and one-line advice for menus and layer names (``available_methods`` keys).
METHOD_LABELS: dict[str, str] = {
    "telea": "Telea Fast Marching",
    "ns": "Navier-Stokes",
    "fsr-fast": "Frequency-Selective, Fast",
    "fsr-best": "Frequency-Selective, Best",
    "gan-inversion": "GAN Inversion",
    "gan-inpainter": "GAN Inpainter",
}
METHOD_TIPS: dict[str, str] = {
    "telea": "OpenCV fast marching: quick and smooth, for small spots",
    "ns": "OpenCV Navier-Stokes: quick, carries edges into thin scratches",
    "fsr-fast": "OpenCV frequency-selective reconstruction: carries texture and structure into the hole",
    "fsr-best": "Frequency-selective reconstruction at its best quality: slower on large holes",
    "gan-inversion": "Find the model's picture that matches the pixels around the mask and fill the hole from it "
    "(for pictures like the model's)",
    "gan-inpainter": "The model's trained inpainting network: one quick pass (for pictures like the model's)",
}


def method_label(name: str) -> str:
    """A method's name for people ("telea" -> "Telea Fast Marching"); unknown names are returned as they are."""
    return METHOD_LABELS.get(name, name)


def available_methods() -> list[str]:
    """Names accepted by ``create_inpainter``."""
    return list(_REGISTRY)


def create_inpainter(name: str, **kwargs: Any) -> Inpainter:
    """Build an inpainter by name; GAN methods take the generator as ``G=``."""
    if name not in _REGISTRY:
        raise InpaintError(f"unknown inpainting method {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)
