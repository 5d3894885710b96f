"""``gan-editor``: the desktop application's entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from editor import __version__


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of gan-editor."""
    ap = argparse.ArgumentParser(
        prog="gan-editor",
        description="Desktop GAN image editor: generate, mask, edit latents, layers, undo, PNG export.",
    )
    ap.add_argument("paths", nargs="*", help="an image or .ora project to open and/or a model file")
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps; or $GAN_EDITOR_DEVICE")
    ap.add_argument("--model", default=None, help="model file to load instead of the shipped default")
    ap.add_argument("--no-default-model", action="store_true", help="start without loading the shipped model")
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="do not build the compiled slider renderer (torch.export + AOTInductor, in the background by default)",
    )
    ap.add_argument("--version", action="version", version=f"gan-editor {__version__}")
    return ap.parse_args(argv)


def _default_model() -> Path | None:
    from ganmodels.resources import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the editor; returns the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ganmodels.device import choose_device

    try:
        device = choose_device(args.device)
    except ValueError as e:
        print(f"gan-editor: {e}", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    from editor.fileio import MODEL_SUFFIXES
    from editor.icons import icon
    from editor.mainwindow import APP_NAME, MainWindow
    from editor.settings import APPLICATION, ORGANIZATION
    from editor.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(icon("app"))
    apply_dark_theme(app)

    window = MainWindow(device=device)
    if not args.no_compile:  # slider frames 2x faster once compiled; eager until then
        window.runner.models.enable_compile(threads=window.runner.torch_threads)
    models = [p for p in args.paths if p.lower().endswith(MODEL_SUFFIXES)]
    images = [p for p in args.paths if not p.lower().endswith(MODEL_SUFFIXES)]
    model = args.model or (models[0] if models else None)
    if model is None and not args.no_default_model:
        default = _default_model()
        model = str(default) if default is not None else None
    if model is not None:
        window.open_model(model)
    elif not args.no_default_model:
        window.statusBar().showMessage("No model loaded: use File > Open Model to load one.", 10000)
    window.show()
    if window.offer_recovery():  # a session that did not exit cleanly left an autosave
        if images:
            window.statusBar().showMessage(f"Recovered unsaved changes; {Path(images[0]).name} was not opened.")
    elif images and images[0].lower().endswith(".ora"):
        window.editor.open_project(images[0])
    elif images:
        window.open_image(images[0])
    code = app.exec()
    # No compiler child process outlives the app; interpreter shutdown under a running compile thread is unsafe.
    if not window.runner.models.cancel_compiles(timeout=10.0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if window.worker_stuck:  # a job ignored cancel: do not let Qt abort on a still running QThread at exit
        logging.getLogger(__name__).error("exiting with a background job still running")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
