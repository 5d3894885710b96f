"""Random free-form and box masks for training and benchmarking inpainting (1 = fill)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def free_form_mask(
    h: int,
    w: int,
    *,
    rng: np.random.Generator,
    area_range: tuple[float, float] = (0.1, 0.4),
    max_tries: int = 50,
    scale: float | None = None,
) -> np.ndarray:
    """Brush-stroke mask in the style of DeepFill v2's free-form masks, with covered area in ``area_range``.

    Strokes are polylines of random length, angle and width; boxes are added sometimes. Stroke sizes are those
    of DeepFill's 256 px masks times ``scale`` (default: min(h, w) / 256). Returns float32 [h, w].
    """
    lo, hi = area_range
    target = rng.uniform(lo, hi)
    mask = np.zeros((h, w), np.uint8)
    scale = min(h, w) / 256 if scale is None else scale
    for _ in range(max_tries):
        if rng.random() < 0.2:
            bh = int(rng.uniform(0.15, 0.5) * h)
            bw = int(rng.uniform(0.15, 0.5) * w)
            y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
            mask[y : y + bh, x : x + bw] = 1
        else:
            num_vertex = int(rng.integers(4, 12))
            width = max(2, int(rng.uniform(12, 40) * scale))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            for _ in range(num_vertex):
                angle = rng.uniform(0, 2 * math.pi)
                length = rng.uniform(10, 60) * scale
                nx = int(np.clip(x + length * math.cos(angle), 0, w - 1))
                ny = int(np.clip(y + length * math.sin(angle), 0, h - 1))
                cv2.line(mask, (x, y), (nx, ny), 1, width)
                cv2.circle(mask, (nx, ny), width // 2, 1, -1)
                x, y = nx, ny
        if mask.mean() >= target:
            break
    if mask.mean() > hi:  # too much: erode until inside the range (never below lo if possible)
        kernel = np.ones((3, 3), np.uint8)
        while mask.mean() > hi:
            # outside the picture counts as unmasked, so a mask covering everything shrinks too
            eroded = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            if eroded.mean() < lo or eroded.sum() == 0 or np.array_equal(eroded, mask):
                break
            mask = eroded
    return mask.astype(np.float32)


def mask_batch(n: int, h: int, w: int, *, rng: np.random.Generator, area_range=(0.1, 0.4)) -> np.ndarray:
    """[n, h, w] float32 masks."""
    return np.stack([free_form_mask(h, w, rng=rng, area_range=area_range) for _ in range(n)])
