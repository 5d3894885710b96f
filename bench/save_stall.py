"""Main-thread stalls while a big project is saved and a picture is opened: the file work on the GUI thread (as
before) against ``editor.offthread`` (as the app does now), in one process. Prints figures (not a test).

    python bench/save_stall.py [--size 4096] [--layers 3] [--repeat 2]

A 10 ms QTimer ticks on the GUI thread; the longest gap between ticks is how long the window stopped painting
and answering. Goal: no stall over 100 ms whatever the file size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from editor.document import make_raster_layer
from editor.fileio import read_image, write_png
from editor.offthread import call_off_gui_thread
from editor.project import save_project


def layers(size: int, count: int) -> list:
    """Smooth gradients with a little noise: PNG compresses them about as it does paintings."""
    rng = np.random.default_rng(0)
    yy, xx = (np.mgrid[0:size, 0:size] / size).astype(np.float32)
    out = []
    for i in range(count):
        px = np.empty([size, size, 4], np.float32)
        px[..., 0], px[..., 1], px[..., 2], px[..., 3] = xx, yy, (xx * yy + 0.1 * i) % 1, 1.0
        px[..., :3] += 0.05 * rng.random([size, size, 1], dtype=np.float32)
        out.append(make_raster_layer(size, size, name=f"layer {i}", pixels=np.clip(px, 0, 1)))
    return out


def longest_stall(work) -> tuple[float, float]:
    """(seconds the work took, longest gap between 10 ms heartbeat ticks in ms) of ``work()`` on the GUI thread."""
    clock, gaps, last = QElapsedTimer(), [], [0]
    clock.start()

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    loop = QEventLoop()  # (not QApplication.processEvents: in PySide6 6.12 each call drops a reference to None)
    loop.processEvents()
    last[0] = clock.elapsed()
    t0 = time.perf_counter()
    work()
    seconds = time.perf_counter() - t0
    loop.processEvents()  # the tick that ends the last gap
    tick()
    timer.stop()
    return seconds, max(gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    _app = QApplication(sys.argv[:1])
    stack = layers(args.size, args.layers)
    folder = Path(tempfile.mkdtemp())
    project, picture = folder / "big.ora", folder / "big.png"
    write_png(picture, stack[0].pixels)

    def save() -> None:
        save_project(project, args.size, args.size, stack, model_path=None)

    def read() -> None:
        read_image(picture)

    print(f"{args.size} x {args.size}, {args.layers} layers")
    for name, work in (("save .ora", save), ("open .png", read)):
        for way, run in (("GUI thread", work), ("off the GUI thread", lambda w=work: call_off_gui_thread(w))):
            for _ in range(args.repeat):
                seconds, stall = longest_stall(run)
                print(f"{name:10s} {way:19s}: {seconds:5.2f} s, longest stall {stall:6.0f} ms")
    print(f"(the .ora is {project.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
