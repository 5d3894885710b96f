"""Layer blend modes: the separable modes of W3C "Compositing and Blending Level 1" (what Krita, GIMP, Photoshop
and OpenRaster's ``svg:*`` composite ops name), followed by source-over.

A layer of colour Cs and alpha as over a backdrop Cb, ab (straight colour in [0, 1]) shows
``Cs' = (1 - ab) Cs + ab B(Cb, Cs)``, composited with source-over: where nothing lies below, the layer shows as in
Normal. Pure numpy (the editor's compositor and the .ora writer share it); float32 [..., 3] images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BlendFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _hard_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    s2 = 2 * cs
    return np.where(cs <= 0.5, cb * s2, cb + (s2 - 1) - cb * (s2 - 1))  # multiply(cb, 2cs) / screen(cb, 2cs - 1)


def _color_dodge(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.minimum(1, cb / (1 - cs))
    return np.where(cb <= 0, 0, np.where(cs >= 1, 1, out))


def _color_burn(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1 - np.minimum(1, (1 - cb) / cs)
    return np.where(cb >= 1, 1, np.where(cs <= 0, 0, out))


def _soft_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(np.maximum(cb, 0)))
    return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))


# name -> B(Cb, Cs); the order is the one menus show.
BLEND_FUNCTIONS: dict[str, BlendFunction] = {
    "normal": lambda cb, cs: cs,
    "multiply": lambda cb, cs: cb * cs,
    "screen": lambda cb, cs: cb + cs - cb * cs,
    "overlay": lambda cb, cs: _hard_light(cs, cb),
    "darken": np.minimum,
    "lighten": np.maximum,
    "color-dodge": _color_dodge,
    "color-burn": _color_burn,
    "hard-light": _hard_light,
    "soft-light": _soft_light,
    "difference": lambda cb, cs: np.abs(cb - cs),
    "exclusion": lambda cb, cs: cb + cs - 2 * cb * cs,
}
BLEND_MODES: tuple[str, ...] = tuple(BLEND_FUNCTIONS)
# OpenRaster's composite-op of each mode (``svg:src-over`` is Normal).
ORA_OPS: dict[str, str] = {m: "svg:src-over" if m == "normal" else f"svg:{m}" for m in BLEND_MODES}


def blend_label(mode: str) -> str:
    """What a menu shows: 'color-dodge' -> 'Color Dodge'."""
    return mode.replace("-", " ").title()


def mode_from_ora(op: str) -> str | None:
    """The blend mode of an OpenRaster composite-op, or None for one these layers cannot show."""
    for mode, name in ORA_OPS.items():
        if op == name:
            return mode
    return None


def blended_source(mode: str, backdrop_rgb: np.ndarray, backdrop_alpha: np.ndarray, src_rgb: np.ndarray) -> np.ndarray:
    """``Cs'``: what a layer of colour ``src_rgb`` [..., 3] shows over a backdrop of straight colour
    ``backdrop_rgb`` [..., 3] and alpha ``backdrop_alpha`` [..., 1], before source-over. Normal returns
    ``src_rgb`` itself."""
    if mode == "normal":
        return src_rgb
    try:
        fn = BLEND_FUNCTIONS[mode]
    except KeyError:
        raise ValueError(f"unknown blend mode {mode!r}; one of {', '.join(BLEND_MODES)}") from None
    mixed = np.clip(fn(backdrop_rgb, src_rgb), 0, 1).astype(np.float32)
    return src_rgb + backdrop_alpha * (mixed - src_rgb)  # (1 - ab) Cs + ab B
