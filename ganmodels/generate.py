"""Sampling and rendering helpers shared by the CLI and the editor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ganmodels.networks import Generator, class_probs, one_hot_c


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
            else:
                lo = hi = int(part)
        except ValueError:
            raise ValueError(f"seeds {text!r}: give whole numbers and ranges, e.g. 0-15 or 1,5,9") from None
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def seed_to_z(seed: int, z_dim: int) -> torch.Tensor:
    """The z of a seed, identical to NVIDIA's generate.py (``np.random.RandomState(seed).randn``): [1, z_dim]."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


def seed_to_class(seed: int, G: Generator) -> int:
    """The class a seed draws from a conditional G (by its class frequencies; -1 for an unconditional G).

    Drawn from the same ``RandomState(seed)`` right after the seed's z, so z stays NVIDIA-compatible.
    """
    if G.c_dim == 0:
        return -1
    rs = np.random.RandomState(seed)
    rs.randn(1, G.z_dim)
    p = class_probs(G).double().numpy()
    return int(rs.choice(G.c_dim, p=p / p.sum()))


@torch.no_grad()
def seeds_to_ws(
    G: Generator,
    seeds: Sequence[int],
    *,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    classes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Map seeds through G.mapping: [N, num_ws, w_dim]. A conditional G draws each seed's class
    (:func:`seed_to_class`) unless ``classes`` gives them."""
    device = next(G.parameters()).device
    z = torch.cat([seed_to_z(s, G.z_dim) for s in seeds]).to(device)
    if G.c_dim == 0:
        c = torch.zeros([len(seeds), 0], device=device)
    else:
        labels = list(classes) if classes is not None else [seed_to_class(s, G) for s in seeds]
        if len(labels) != len(seeds):
            raise ValueError(f"{len(labels)} classes for {len(seeds)} seeds")
        c = one_hot_c(G, labels)
    return G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


@torch.no_grad()
def truncation_centres(G: Generator, c: torch.Tensor) -> torch.Tensor:
    """What truncation pulls latents with labels c [N, c_dim] towards: [N, 1, w_dim] class means for a conditional
    StyleGAN2 mapping (``MappingNetwork.truncation_centre``, what ``G.mapping`` itself uses), else ``w_avg``
    [w_dim]. Either broadcasts in ``centre.lerp(ws, psi)`` with ws [N, num_ws, w_dim]."""
    mapping = G.mapping
    if G.c_dim == 0 or not hasattr(mapping, "truncation_centre"):
        return mapping.w_avg
    return mapping.truncation_centre(c).unsqueeze(1)


def truncation_centre(G: Generator, class_index: int | None = None) -> torch.Tensor:
    """The centre of one latent: [w_dim] float32, on G's device.

    For a sample a conditional G drew in ``class_index``: that class's mean w; otherwise (unconditional G, no
    class, e.g. an inverted picture, or a mapping without class centres) ``w_avg``. ``centre.lerp(ws, psi)`` equals
    the mapping's own truncation.
    """
    if class_index is None or class_index < 0 or G.c_dim == 0:
        return G.mapping.w_avg
    return truncation_centres(G, one_hot_c(G, [class_index])).reshape(-1)


@torch.no_grad()
def class_previews(G: Generator, *, seed: int = 0, truncation_psi: float = 0.6) -> np.ndarray:
    """One picture per class of a conditional G, all from the same seed's z: uint8 [c_dim, R, R, 3]."""
    if G.c_dim == 0:
        return np.zeros([0, G.img_resolution, G.img_resolution, 3], dtype=np.uint8)
    ws = seeds_to_ws(G, [seed] * G.c_dim, classes=list(range(G.c_dim)), truncation_psi=truncation_psi)
    return to_uint8(synthesize(G, ws))


@torch.no_grad()
def synthesize(G: Generator, ws: torch.Tensor, *, noise_mode: str = "const", batch_size: int = 8) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> images [N, 3, R, R] float32 in about [-1, 1], in batches."""
    device = next(G.parameters()).device
    out = [G.synthesis(ws[i : i + batch_size].to(device), noise_mode=noise_mode) for i in range(0, len(ws), batch_size)]
    return torch.cat(out)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    x = (img.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_float01(img: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> float32 [N, H, W, 3] in [0, 1] (the editor's image convention)."""
    x = (img.detach().float().clamp(-1, 1) + 1) * 0.5
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: np.ndarray, *, cols: int | None = None, pad: int = 0, background: int = 255) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one uint8 [rows*H, cols*W, 3] grid."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full([rows * (h + pad) + pad, cols * (w + pad) + pad, c], background, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid
