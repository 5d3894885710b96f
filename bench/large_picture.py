"""File work on a large picture, which the editor does on the GUI thread (with a wait cursor): open, project save,
PNG export, and the float -> uint8 conversion they share against the plain numpy expression it replaced (ratio in
the same process).

    python bench/large_picture.py [--size 6000x4000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from editor.document import make_raster_layer
from editor.fileio import read_image, write_png
from editor.project import save_project
from ganmodels.imageio import float_to_uint8


def timed(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WxH of the test picture")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    # A smooth picture with some texture (compresses like a photo, not like noise or a flat fill).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 37) * np.cos(yy / 53)], axis=2)
    rgb += rng.normal(0, 0.02, rgb.shape).astype(np.float32)
    rgba = np.concatenate([np.clip(rgb, 0, 1), np.ones((h, w, 1), np.float32)], axis=2)  # [H, W, 4]
    folder = Path(tempfile.mkdtemp())
    jpeg = folder / "big.jpg"
    Image.fromarray(float_to_uint8(rgba[..., :3])).save(jpeg, quality=92)
    layer = make_raster_layer(w, h, name="picture", pixels=rgba)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 1
    layer.mask[...] = mask

    def numpy_uint8() -> np.ndarray:
        return (np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8)

    base = timed(numpy_uint8, args.repeat)
    fast = timed(lambda: float_to_uint8(rgba), args.repeat)
    same = float((float_to_uint8(rgba) == numpy_uint8()).mean())
    print(f"picture {w}x{h} RGBA float32 ({rgba.nbytes / 1e6:.0f} MB), {args.repeat} runs, median seconds")
    print(f"float->uint8   numpy {base:.3f} s   float_to_uint8 {fast:.3f} s   ratio {fast / base:.2f}   "
          f"identical values {100 * same:.4f} % (the rest: exact halves rounded to even)")  # fmt: skip
    print(f"open JPEG      {timed(lambda: read_image(jpeg), args.repeat):.2f} s")
    ora = folder / "p.ora"
    print(f"save project   {timed(lambda: save_project(ora, w, h, [layer], model_path=None), args.repeat):.2f} s "
          f"({ora.stat().st_size / 1e6:.1f} MB, one layer with a mask)")  # fmt: skip
    png = folder / "e.png"
    seconds = timed(lambda: write_png(png, rgba), args.repeat)
    print(f"export PNG     {seconds:.2f} s ({png.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
