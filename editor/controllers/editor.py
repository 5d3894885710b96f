"""Document-level flows with no widgets: new / open / import / export, loading models, generating samples and
running long backend jobs.

Failures are reported through ``error(title, message)`` and leave the document unchanged; the main window turns
them into message boxes.

Adding a long operation (inversion, inpainting): build its inputs on the GUI thread (e.g. ``doc.flatten_rgb()``,
a copy of the active mask, the model), pass ``run_backend_job`` a function that creates the backend generator
from them, and apply the result in ``on_result`` with one undoable document call (``set_pixels`` /
``set_latent`` / ``add_layer``). Progress, previews, cancel and errors are handled by the runner and Jobs panel.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from editor.document import Document, make_gan_layer, make_raster_layer
from editor.fileio import ImageFileError, export_metadata, read_image, write_png
from editor.jobs import GenerateRequest, GenerateResult, GeneratorJobRequest, Job, JobRunner, JobState, Placement
from editor.latent import GanState
from editor.qtimage import display_cache
from editor.raster import centered_square, fit_image, place_rgb
from editor.session import ModelSession
from ganmodels.modelfile import ModelFileError

DEFAULT_SIZE = 512
DEFAULT_TRUNCATION = 0.7


class EditorController(QObject):
    error = Signal(str, str)  # title, message
    status = Signal(str)
    sample_added = Signal(str)  # layer id of a new GAN sample

    def __init__(
        self,
        doc: Document,
        runner: JobRunner,
        session: ModelSession,
        parent: QObject | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc, self.runner, self.session = doc, runner, session
        self.rng = rng if rng is not None else random.Random()  # seeds for "random sample"
        self._backend_jobs: dict[int, tuple[Callable[[Any], None], int]] = {}  # id -> (on_result, generation)
        self._generates: dict[int, int] = {}  # queued sample job id -> document generation when asked
        self._generation = 0  # bumped whenever the document is replaced
        doc.reset.connect(self._on_reset)
        runner.job_finished.connect(self._on_job_finished)
        runner.job_failed.connect(self._on_job_failed)
        runner.job_cancelled.connect(self._on_job_cancelled)

    # ----------------------------------------------------------------------------------------------------------
    # Documents

    def new_document(
        self,
        width: int = DEFAULT_SIZE,
        height: int = DEFAULT_SIZE,
        background: tuple[float, float, float, float] | None = (1.0, 1.0, 1.0, 1.0),
    ) -> None:
        """An empty image with one Background layer (transparent when ``background`` is None)."""
        layer = make_raster_layer(width, height, name="Background", fill=background)
        self.doc.reset_to(width, height, [layer])
        self.status.emit(f"New image, {width} x {height}")

    def open_image(self, path: str | Path) -> bool:
        """Replace the document by a picture (one raster layer). False (and an error) if it cannot be read."""
        path = Path(path)
        try:
            rgba = read_image(path)
        except ImageFileError as e:
            self.error.emit("Cannot open image", str(e))
            return False
        h, w = rgba.shape[:2]
        self.doc.reset_to(w, h, [make_raster_layer(w, h, name=path.stem, pixels=rgba)], path=path)
        self.status.emit(f"Opened {path.name} ({w} x {h})")
        return True

    def import_image(self, path: str | Path) -> bool:
        """Add a picture as a new layer, scaled down to fit the document if it is larger."""
        path = Path(path)
        try:
            rgba = read_image(path)
        except ImageFileError as e:
            self.error.emit("Cannot import image", str(e))
            return False
        pixels = fit_image(rgba, self.doc.width, self.doc.height)
        layer = make_raster_layer(self.doc.width, self.doc.height, name=path.stem, pixels=pixels)
        self.doc.add_layer(layer, text=f"Import {path.name}")
        return True

    def export_png(self, path: str | Path, *, what: str = "flattened") -> bool:
        """Write the flattened image (``what="flattened"``) or the active layer (``"layer"``) as PNG with the
        latent metadata of the GAN layers it shows."""
        path = Path(path)
        if what == "layer":
            layer = self.doc.active_layer
            if layer is None:
                self.error.emit("Nothing to export", "Select a layer to export it.")
                return False
            rgba, layers = layer.pixels, [layer]
        elif what == "flattened":
            rgba, layers = self.doc.flatten(), [layer for layer in self.doc.layers if layer.visible]
        else:
            raise ValueError(f"what must be 'flattened' or 'layer', got {what!r}")
        try:
            write_png(path, rgba, text=export_metadata(layers, what=what, size=self.doc.size))
        except ImageFileError as e:
            self.error.emit("Export failed", str(e))
            return False
        self.status.emit(f"Exported {path.name}")
        return True

    # ----------------------------------------------------------------------------------------------------------
    # Models and samples

    def open_model(self, path: str | Path) -> bool:
        """Load a model file; the previous model stays loaded if this one cannot be read."""
        try:
            model = self.session.load(path)
        except ModelFileError as e:
            self.error.emit("Cannot open model", str(e))
            return False
        except (OSError, RuntimeError, MemoryError) as e:
            self.error.emit("Cannot open model", f"{Path(path).name}: {e}")
            return False
        self.status.emit(f"Loaded model {model.name} ({model.resolution} px) on {self.session.device_text}")
        return True

    def generate(self, seed: int | None = None, truncation: float = DEFAULT_TRUNCATION) -> Job | None:
        """Queue a new sample; it is added as a GAN layer (on top, centred square) when it is ready."""
        if not self.session.loaded:
            self.error.emit("No model", "Open a model first (File > Open model).")
            return None
        seed = self.random_seed() if seed is None else int(seed)
        placement = Placement(centered_square(*self.doc.size), *self.doc.size)
        request = GenerateRequest(self.session.key, seed, float(truncation), placement=placement)
        job = self.runner.submit(request, description=f"Sample, seed {seed}")
        if job.active:  # (a sync runner has already delivered it)
            self._generates[job.id] = self._generation
        return job

    def random_seed(self) -> int:
        """A fresh seed for a new sample."""
        return self.rng.randrange(2**31 - 1)

    def run_backend_job(
        self,
        kind: str,
        make_generator: Callable[[], Iterator[Any]],
        on_result: Callable[[Any], None],
        *,
        description: str = "",
    ) -> Job:
        """Run a backend generator on the worker; ``on_result(result)`` runs on the GUI thread when it finishes,
        unless the document was replaced meanwhile. Failures become an error message."""
        job = self.runner.submit(GeneratorJobRequest(kind, make_generator, description or kind))
        if job.active:
            self._backend_jobs[job.id] = (on_result, self._generation)
        elif job.state == JobState.DONE:  # a sync runner ran it inside submit
            on_result(job.result)
        elif job.state == JobState.FAILED:
            self.error.emit(f"{job.description} failed", job.error or "")
        return job

    def _on_reset(self) -> None:
        self._generation += 1

    def _on_job_finished(self, job_id: int, result: object) -> None:
        backend = self._backend_jobs.pop(job_id, None)
        if backend is not None:
            on_result, generation = backend
            if generation == self._generation:
                on_result(result)
            return
        if not isinstance(result, GenerateResult):
            return
        job = self.runner.job(job_id)
        if job is None or not isinstance(job.request, GenerateRequest):
            return
        request: GenerateRequest = job.request
        generation = self._generates.pop(job_id, self._generation)
        model = self.session.model
        if model is None or request.model_key != self.session.key:
            return  # the model changed meanwhile
        rect = centered_square(*self.doc.size)
        pixels = result.pixels
        if generation != self._generation or pixels is None or pixels.shape[:2] != (self.doc.height, self.doc.width):
            pixels = place_rgb(result.image, rect, *self.doc.size)
        else:
            assert request.placement is not None
            rect = request.placement.rect
            if result.display is not None:
                display_cache.put(pixels, result.display)
        state = GanState(
            model_key=self.session.key,
            model_path=str(model.path) if model.path else None,
            model_name=model.name,
            ws=result.ws,
            placement=rect,
            seed=result.seed,
            truncation=result.truncation_psi,
            noise_mode=request.noise_mode,
        )
        self.doc.model_path = model.path
        layer = make_gan_layer(pixels, state, name=f"Sample {result.seed}")
        self.doc.add_layer(layer, text=f"New sample (seed {result.seed})")
        self.sample_added.emit(layer.id)

    def _on_job_cancelled(self, job_id: int) -> None:
        self._generates.pop(job_id, None)
        self._backend_jobs.pop(job_id, None)

    def _on_job_failed(self, job_id: int, message: str) -> None:
        self._generates.pop(job_id, None)
        job = self.runner.job(job_id)
        if self._backend_jobs.pop(job_id, None) is not None:
            self.error.emit(f"{job.description if job is not None else 'Job'} failed", message)
        elif job is not None and job.kind == "generate":
            self.error.emit("Sampling failed", message)

    # ----------------------------------------------------------------------------------------------------------
    # Projects (.ora)

    def save_project(self, path: str | Path) -> bool:
        """Save all layers, masks and latents as OpenRaster; marks the document clean."""
        from editor.project import save_project

        path = Path(path)
        try:
            save_project(
                path,
                self.doc.width,
                self.doc.height,
                list(self.doc.layers),
                model_path=str(self.doc.model_path) if self.doc.model_path else None,
            )
        except (OSError, ValueError) as e:
            self.error.emit("Save failed", f"{path.name}: {e}")
            return False
        self.doc.path = path
        self.doc.undo_stack.setClean()
        self.status.emit(f"Saved {path.name}")
        return True

    def open_project(self, path: str | Path) -> bool:
        """Open an .ora (ours or another program's); damaged parts are skipped with a warning."""
        from editor.project import load_project
        from ganmodels.ora import OraError

        path = Path(path)
        model = self.session.model
        try:
            w, h, layers, _model_path, warnings = load_project(
                path, model_key=self.session.key, model_name=model.name if model is not None else ""
            )
        except (OraError, OSError) as e:
            self.error.emit("Cannot open project", str(e))
            return False
        if not layers:
            self.error.emit("Cannot open project", f"{path.name}: no layer could be read. " + " ".join(warnings))
            return False
        self.doc.reset_to(w, h, layers, path=path)
        if warnings:
            self.error.emit("Project opened with problems", "\n".join(warnings))
        self.status.emit(f"Opened {path.name} ({len(layers)} layers)")
        return True

    # ----------------------------------------------------------------------------------------------------------
    # Invert and inpaint

    def invert_image(self, *, steps: int = 200) -> Job | None:
        """Invert the visible picture (its centred square) into a new GAN layer, ignoring the active layer's mask."""
        import numpy as np

        if not self.session.loaded:
            self.error.emit("No model", "Open a model first (File > Open model).")
            return None
        model, key = self.session.model, self.session.key
        rect = centered_square(*self.doc.size)
        image = self.doc.flatten_rgb()[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w].copy()
        layer = self.doc.active_layer
        mask = None
        if layer is not None and layer.mask.any():
            mask = layer.mask[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w].copy()
            if mask.min() >= 1:
                self.error.emit("Nothing to invert", "The mask covers the whole picture.")
                return None

        def make():
            import torch

            from ganmodels.components import load_encoder, load_perceptual
            from ganmodels.encoder import invert_with_encoder
            from ganmodels.inversion import invert

            g = torch.Generator().manual_seed(0)
            perceptual = load_perceptual(model)
            encoder = load_encoder(model)
            if encoder is not None:
                return invert_with_encoder(
                    encoder,
                    model.G,
                    image,
                    num_steps=max(steps // 4, 20),
                    mask=mask,
                    perceptual=perceptual,
                    optimize_noise=False,
                    generator=g,
                )
            return invert(
                model.G, image, mask=mask, num_steps=steps, perceptual=perceptual, optimize_noise=False, generator=g
            )

        def done(step) -> None:
            state = GanState(
                model_key=key,
                model_path=str(model.path) if model.path else None,
                model_name=model.name,
                ws=np.asarray(step.ws[0].cpu(), np.float32),
                placement=rect,
            )
            pixels = place_rgb(step.preview, rect, *self.doc.size)
            self.doc.add_layer(
                make_gan_layer(pixels, state, name=f"Inverted ({step.psnr:.1f} dB)"), text="Invert image"
            )
            self.status.emit(f"Inverted: PSNR {step.psnr:.2f} dB on known pixels")

        return self.run_backend_job("invert", make, done, description=f"Invert ({steps} steps)")

    def inpaint(self, method: str, *, steps: int = 150) -> Job | None:
        """Fill the active layer's mask of the visible picture with ``method`` into a new layer."""
        import numpy as np

        from ganmodels.inpainting import available_methods

        if method not in available_methods():
            self.error.emit("Inpaint", f"unknown method {method!r}")
            return None
        layer = self.doc.active_layer
        if layer is None or not layer.mask.any():
            self.error.emit("Nothing to inpaint", "Paint a mask over the area to repair first (brush: B).")
            return None
        needs_model = method.startswith("gan")
        if needs_model and not self.session.loaded:
            self.error.emit("No model", f"{method} needs a model: open one first, or choose a classical method.")
            return None
        model = self.session.model
        image = self.doc.flatten_rgb().copy()
        mask = layer.mask.copy()

        def make():
            from ganmodels.components import load_encoder, load_inpainter, load_perceptual
            from ganmodels.inpainting import create_inpainter

            kw = {}
            if method == "gan-inpainter":
                kw = dict(G=model.G, net=load_inpainter(model))
            elif needs_model:
                kw = dict(G=model.G, num_steps=steps, perceptual=load_perceptual(model), encoder=load_encoder(model))
            return create_inpainter(method, **kw).run(image, mask)

        def done(step) -> None:
            rgba = np.concatenate([step.result, (mask > 0).astype(np.float32)[..., None]], axis=2)
            new = make_raster_layer(self.doc.width, self.doc.height, name=f"Inpainted ({method})", pixels=rgba)
            self.doc.add_layer(new, text=f"Inpaint ({method})")
            self.status.emit(f"Inpainted with {method}")

        return self.run_backend_job("inpaint", make, done, description=f"Inpaint ({method})")

    # ----------------------------------------------------------------------------------------------------------
    # Mask

    def clear_mask(self) -> None:
        """Edit > Clear Mask on the active layer."""
        if self.doc.active_id:
            self.doc.clear_mask(self.doc.active_id)

    def invert_mask(self) -> None:
        """Edit > Invert Mask on the active layer."""
        if self.doc.active_id:
            self.doc.invert_mask(self.doc.active_id)
