"""Capture docs/screenshot-main.png: the editor on the shipped model with a sample, two slider edits and a mask.

Run under a real X server for proper fonts, e.g.
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py --out docs/screenshot-main.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/screenshot-main.png")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", default=None, help="model file (default: the shipped one)")
    args = ap.parse_args()

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from editor.mainwindow import MainWindow
    from editor.settings import Settings
    from editor.theme import apply_dark_theme
    from ganmodels.resources import default_model_path

    apply_dark_theme(app)
    loop = QEventLoop()

    def wait_until(cond, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError("the editor did not get there in time")
            loop.processEvents()  # (not app.processEvents: in PySide6 6.12 each call drops a reference to None)
            time.sleep(0.01)

    window = MainWindow(settings=Settings.at_path(Path(tempfile.mkdtemp()) / "screenshot.ini"))
    window.ask_before_discarding = False
    window.resize(1400, 880)
    window.show()
    assert window.open_model(args.model or str(default_model_path()))
    window.editor.new_document(512, 512)
    window.editor.generate(seed=args.seed)  # (at the model's default truncation)
    wait_until(lambda: len(window.doc.layers) == 2)
    sliders = window.latent_panel.sliders
    for name, value in list(zip(sliders, (1.5, -1.0), strict=False)):
        count = window.doc.undo_stack.count()
        slider = sliders[name].slider
        slider.setSliderDown(True)
        slider.setValue(sliders[name].position_of(value))
        slider.setSliderDown(False)
        wait_until(lambda c=count: window.doc.undo_stack.count() == c + 1)
    layer = window.doc.active_layer
    import cv2

    mask = np.zeros(window.doc.size[::-1], np.float32)
    stroke = np.array([[150, 380], [220, 405], [300, 410], [370, 390]], np.int32)  # a brush stroke over damage
    cv2.polylines(mask, [stroke], False, 1.0, thickness=34, lineType=cv2.LINE_AA)
    window.doc.set_mask(layer.id, mask)
    deadline = time.monotonic() + 0.5  # let the canvas repaint
    while time.monotonic() < deadline:
        loop.processEvents()
        time.sleep(0.01)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(args.out)
    print(f"wrote {args.out}: layers {[la.name for la in window.doc.layers]}, strengths {dict(layer.gan.strengths)}")
    window.close()
    window.runner.shutdown(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
