"""Document-level flows with no widgets: new / open / import / export, loading models, generating samples and
running long backend jobs.

Failures are reported through ``error(title, message)`` and leave the document unchanged; the main window turns
them into message boxes.

Adding a long operation (inversion, inpainting): build its inputs on the GUI thread (e.g. ``doc.flatten_rgb()``,
a copy of the active mask, the model), pass ``run_backend_job`` a function that creates the backend generator
from them, and apply the result in ``on_result`` with one undoable document call (``set_pixels`` /
``set_latent`` / ``add_layer``). Progress, previews, cancel and errors are handled by the runner and Jobs panel.
Jobs given a ``preview_rect`` also show their step previews on the canvas there (``preview_changed``) while they
run; ``progress_stage`` makes the newest preview travel with every progress report.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from editor.controllers.latent import model_matches
from editor.document import Document, Layer, make_gan_layer, make_raster_layer, scale_layers
from editor.fileio import ImageFileError, ImageTooLarge, export_metadata, read_image, write_png
from editor.jobs import (
    GenerateRequest,
    GenerateResult,
    GeneratorJobRequest,
    Job,
    JobRunner,
    JobState,
    Placement,
    Progress,
    progress_of,
    render_ws,
)
from editor.latent import GanState, sample_name
from editor.offthread import FileProgress, FileWorkCancelled, call_off_gui_thread
from editor.pti import PtiWeights, new_pti_key, tuned_model
from editor.qtimage import display_cache
from editor.raster import Rect, centered_square, fit_image, place_rgb
from editor.session import ModelSession
from ganmodels.directions import is_direction_file
from ganmodels.inpainting import method_label
from ganmodels.modelfile import GanModel, ModelFileError

DEFAULT_SIZE = 512
DEFAULT_INVERT_STEPS = 200
DEFAULT_PTI_STEPS = 100
DEFAULT_INPAINT_TUNE_STEPS = 50  # gan-inversion + PTI: +0.3 dB on the 64 px bench for twice the time
PREVIEW_EVERY = 5  # backend steps between preview renders of an inversion / tuning
PREVIEW_INTERVAL = 0.1  # seconds between canvas updates of a running job's preview


def progress_stage(
    steps: Iterator[Any],
    *,
    start: float = 0.0,
    span: float = 1.0,
    label: str = "",
    preview: np.ndarray | None = None,
) -> Generator[Progress, None, tuple[Any, np.ndarray | None]]:
    """Re-yield a backend generator's steps as the part [start, start + span] of one job's progress, each carrying
    the newest preview so far (backends render one only every few steps, and the runner reports only some steps).
    ``label`` prefixes the messages. Returns (last step, newest preview); closes ``steps`` when stopped early."""
    last = None
    try:
        for step in steps:
            p = progress_of(step)
            if p.preview is not None:
                preview = p.preview  # [h, w, 3]
            message = f"{label}: {p.message}" if label and p.message else label or p.message
            yield Progress(start + span * p.fraction, message, preview)
            last = step
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()
    return last, preview


@dataclasses.dataclass(frozen=True, eq=False)
class PtiInversion:
    """The result of an inversion followed by pivotal tuning."""

    ws: np.ndarray  # [num_ws, w_dim], the pivot
    weights: PtiWeights
    model: GanModel  # a tuned copy of the model: what renders of the new layer use
    image: np.ndarray  # float32 [R, R, 3], ``ws`` rendered by ``model`` (as slider renders do)
    psnr: float  # dB on known pixels, after tuning
    psnr_inverted: float  # dB on known pixels, before tuning


@dataclasses.dataclass(frozen=True, eq=False)
class _BackendJob:
    on_result: Callable[[Any], None]
    generation: int  # document generation when submitted
    canvas: int  # how many times the document had been cropped or resized (or that undone) when submitted
    preview_rect: Rect | None  # where its previews go on the canvas (None: not shown)


_RESIZED = "the picture was cropped or resized"


def oom_retry_description(model: Any) -> str:
    """How ``oom_variant`` retries, for the user."""
    on_cpu = next(model.G.parameters()).device.type == "cpu"
    return "without the perceptual loss" if on_cpu else "on the CPU"


def oom_variant(model: Any) -> tuple[Any, bool]:
    """What a backend job retries with after running out of memory: a CPU copy of a GPU model, or on the CPU the
    same model without the discriminator-feature perceptual term (its activations are the largest). Called on the
    worker thread, only when a job did run out of memory."""
    import copy

    device = next(model.G.parameters()).device
    if device.type != "cpu":
        cpu_model = copy.copy(model)
        cpu_model.G = copy.deepcopy(model.G).cpu()
        return cpu_model, False
    return model, True


def _not_opened(path: Path) -> str:
    """The status of an open the user cancelled."""
    return f"{path.name} was not opened (cancelled)"


def _left_as_it_was(path: Path) -> str:
    """What a cancelled write did to ``path`` (asked before the write starts)."""
    return f"{path.name} was left as it was" if path.exists() else f"{path.name} was not written"


class EditorController(QObject):
    error = Signal(str, str)  # title, message
    status = Signal(str)
    sample_added = Signal(str)  # layer id of a new GAN sample
    preview_changed = Signal(object, object)  # RGB float32 [h, w, 3] of a running job and its Rect; None, None hides
    file_io_done = Signal()  # the file reads / writes running have all finished (after ``file_io_busy``)

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
        # Asked with the message when a picture is over the size limit: True opens it downscaled. None: refuse.
        self.confirm_downscale: Callable[[str], bool] | None = None
        self._backend_jobs: dict[int, _BackendJob] = {}
        self._generates: dict[int, int] = {}  # queued sample job id -> document generation when asked
        self._generation = 0  # bumped whenever the document is replaced
        self._canvas = 0  # bumped whenever it is cropped or resized: backend results of another size are dropped
        self._io_depth = 0  # file reads / writes running on a helper thread (see ``_off_gui_thread``)
        self._held_results: list[tuple[int, object]] = []  # jobs that finished meanwhile, handled afterwards
        self._inpainted_from: dict[str, str] = {}  # inpaint result layer id -> the layer whose mask it filled
        # layers made by inversions of this document (not inverted again) -> the layer whose mask they ignored
        self._inverted: dict[str, str] = {}
        self._pti_registered: set[str] = set()  # keys of tuned weights registered with the runner's models
        self._preview_job = 0  # the job whose preview is on the canvas (0: none)
        self._preview_shown: np.ndarray | None = None
        self._preview_time = -math.inf  # perf_counter time of the last canvas update
        self._preview_pending: tuple[int, np.ndarray, Rect] | None = None  # newest preview not shown yet
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._preview_timer.timeout.connect(self._show_preview)
        doc.reset.connect(self._on_reset)
        doc.resized.connect(self._on_resized)
        session.model_changed.connect(self._on_model_changed)
        runner.job_progress.connect(self._on_job_progress)
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

    @property
    def file_io_busy(self) -> bool:
        """Whether a file is being read or written (the window must not close meanwhile)."""
        return self._io_depth > 0

    def _off_gui_thread(self, fn: Callable[[], Any], progress: FileProgress | None = None) -> Any:
        """``fn()`` (a file read or write that touches no document state) on a helper thread, the window kept
        painting (``editor.offthread``); with ``progress``, long work shows a box with Cancel (then
        ``FileWorkCancelled`` is raised)."""
        self._io_depth += 1
        try:
            return call_off_gui_thread(fn, progress=progress)
        finally:
            self._io_depth -= 1
            if not self._io_depth:  # after the open / save that is running has finished
                QTimer.singleShot(0, self._after_file_io)

    def _after_file_io(self) -> None:
        if self._io_depth:  # (another read or write started meanwhile: it comes back here when done)
            return
        held, self._held_results = self._held_results, []
        for job_id, result in held:
            self._on_job_finished(job_id, result)
        self.file_io_done.emit()

    def _read_image(self, path: Path, title: str) -> np.ndarray | None:
        """Read a picture; over the size limit, ``confirm_downscale(message)`` decides whether to open it smaller."""
        cancelled = _not_opened(path)
        try:
            return self._off_gui_thread(lambda: read_image(path), FileProgress(f"Opening {path.name}...", abandon=True))
        except FileWorkCancelled:
            self.status.emit(cancelled)
        except ImageTooLarge as e:
            if self.confirm_downscale is None:
                self.error.emit(title, str(e))
            elif self.confirm_downscale(str(e)):
                try:
                    return self._off_gui_thread(
                        lambda: read_image(path, downscale=True),
                        FileProgress(f"Opening {path.name} downscaled...", abandon=True),
                    )
                except FileWorkCancelled:
                    self.status.emit(cancelled)
                except ImageFileError as e2:
                    self.error.emit(title, str(e2))
            else:  # the user said no: nothing to explain in a box
                self.status.emit(f"Not opened: {e.limit_message}")
        except ImageFileError as e:
            self.error.emit(title, str(e))
        return None

    def open_image(self, path: str | Path) -> bool:
        """Replace the document by a picture (one raster layer). False (and an error) if it cannot be read."""
        path = Path(path)
        rgba = self._read_image(path, "Cannot open image")
        if rgba is None:
            return False
        h, w = rgba.shape[:2]
        layer, warnings = self._exported_gan_layer(path, rgba)
        if layer is None:
            layer = make_raster_layer(w, h, name=path.stem, pixels=rgba)
        self.doc.reset_to(w, h, [layer], path=path)
        if layer.gan is None:
            self.status.emit(f"Opened {path.name} ({w} x {h})" + (f"; {warnings[0]}" if warnings else ""))
            return True
        bound = (
            ""
            if model_matches(layer.gan, self.session)
            else f"; open its model ({layer.gan.model_name or 'not named'}) to edit it"
        )
        self.status.emit(
            f"Opened {path.name} ({w} x {h}) as the GAN layer it was exported from{bound}"
            + "".join(f"; {m}" for m in warnings)
        )
        return True

    def _exported_gan_layer(self, path: Path, rgba: np.ndarray) -> tuple[Layer | None, list[str]]:
        """The GAN layer a layer PNG exported by this editor came from (its latent, directions and blend), bound to
        the loaded model when it is the one the layer was made with; (None, []) for any other picture."""
        from editor.fileio import read_png_metadata
        from editor.project import gan_layer_from_png

        if path.suffix.lower() != ".png":
            return None, []
        try:
            meta = read_png_metadata(path)
        except (OSError, ValueError):
            return None, []
        if not meta:
            return None, []
        model = self.session.model
        return gan_layer_from_png(
            meta,
            rgba,
            model_key=self.session.key,
            model_name=model.name if model is not None else "",
            model_path=model.path if model is not None else None,
        )

    def import_image(self, path: str | Path) -> bool:
        """Add a picture as a new layer, scaled down to fit the document if it is larger."""
        path = Path(path)
        rgba = self._read_image(path, "Cannot import image")
        if rgba is None:
            return False
        self.add_picture_layer(rgba, name=path.stem, text=f"Import {path.name}", done=f"Imported {path.name}")
        return True

    def add_picture_layer(
        self, rgba: np.ndarray, *, name: str, text: str, done: str, source_size: tuple[int, int] | None = None
    ) -> None:
        """Add a picture (straight RGBA float32 [h, w, 4]) as a new layer, centred and scaled down to fit the document
        if it is larger (Import, Paste). ``text``: the undo step; ``done``: the status message's start ("Imported
        a.png"); ``source_size``: (width, height) before the caller scaled the picture down, if it did."""
        pixels = fit_image(rgba, self.doc.width, self.doc.height)
        layer = make_raster_layer(self.doc.width, self.doc.height, name=name, pixels=pixels)
        self.doc.add_layer(layer, text=text)
        w, h = source_size or (rgba.shape[1], rgba.shape[0])
        if w > self.doc.width or h > self.doc.height:
            scale = min(self.doc.width / w, self.doc.height / h)
            self.status.emit(
                f"{done} scaled down to {max(1, round(w * scale))} x {max(1, round(h * scale))} "
                f"({scale:.0%}) to fit the {self.doc.width} x {self.doc.height} picture"
            )
        else:
            self.status.emit(f"{done} as a layer")

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
        text = export_metadata(layers, what=what, size=self.doc.size)
        progress = FileProgress(f"Exporting {path.name}...")
        kept = _left_as_it_was(path)
        try:
            self._off_gui_thread(lambda: write_png(path, rgba, text=text, progress=progress), progress)
        except FileWorkCancelled:
            self.status.emit(f"Export cancelled: {kept}")
            return False
        except ImageFileError as e:
            self.error.emit("Export failed", str(e))
            return False
        self.status.emit(f"Exported {path.name}")
        return True

    # ----------------------------------------------------------------------------------------------------------
    # Models and samples

    def open_model(self, path: str | Path) -> bool:
        """Load a model file, or add a direction file's directions to the loaded model; the previous model stays
        loaded if this one cannot be read."""
        if is_direction_file(path):
            try:
                names = self.session.add_directions(path)
            except ValueError as e:
                self.error.emit("Cannot add directions", str(e))
                return False
            self.status.emit(f"Added {len(names)} direction{'s' if len(names) != 1 else ''} from {Path(path).name}")
            return True
        try:
            model = self.session.load(path)
        except ModelFileError as e:
            self.error.emit("Cannot open model", str(e))
            return False
        except (OSError, RuntimeError, MemoryError) as e:
            self.error.emit("Cannot open model", f"{Path(path).name}: {e}")
            return False
        self.status.emit(f"Loaded model {model.name} ({model.resolution} px) on {self.session.device_text}")
        if model.notes:
            self.error.emit("Model opened with problems", "\n".join(model.notes))
        return True

    def generate(
        self,
        seed: int | None = None,
        truncation: float | None = None,
        class_index: int | None = None,
        *,
        near_anchor: bool = True,
    ) -> Job | None:
        """Queue a new sample; it is added as a GAN layer (on top, centred square) when it is ready.

        ``truncation`` None: the model's default (``ModelSession.default_truncation``: near the anchor the seed
        draws for a model with anchors). ``class_index`` picks the class of a conditional model (None: the one the
        seed draws). ``near_anchor`` False: a plain sample of a model with anchors, truncated towards the (class's)
        mean w."""
        if not self.session.loaded:
            self.error.emit("No model", "Open a model first (File > Open model).")
            return None
        seed = self.random_seed() if seed is None else int(seed)
        placement = Placement(centered_square(*self.doc.size), *self.doc.size)
        if class_index is not None:
            classes = self.session.model.G.c_dim if self.session.model is not None else 0
            if not 0 <= class_index < classes:
                self.error.emit("No such class", f"The model has {classes} classes; {class_index} is not one of them.")
                return None
        if truncation is None:
            truncation = self.session.default_truncation(near_anchor=near_anchor)
        request = GenerateRequest(
            self.session.key,
            seed,
            float(truncation),
            placement=placement,
            class_index=class_index,
            near_anchor=near_anchor,
        )
        job = self.runner.submit(request, description=f"Sample, seed {seed}")
        if job.active:  # (a sync runner has already delivered it)
            self._generates[job.id] = self._generation
        return job

    def class_previews(self, on_result: Callable[[np.ndarray], None]) -> Job | None:
        """Render one picture per class of the (conditional) model on the worker; ``on_result(uint8 [K, R, R, 3])``."""
        model = self.session.model
        if model is None or model.G.c_dim == 0:
            return None

        def make(G=model.G):
            from ganmodels.generate import class_previews

            yield class_previews(G)

        return self.run_backend_job("class-previews", make, on_result, description="Class previews")

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
        preview_rect: Rect | None = None,
        retry_on_oom: Callable[[], Iterator[Any]] | None = None,
        retry_description: str = "with a smaller batch",
    ) -> Job:
        """Run a backend generator on the worker; ``on_result(result)`` runs on the GUI thread when it finishes,
        unless the document was replaced meanwhile. Failures become an error message. With ``preview_rect``, the
        steps' previews are shown there on the canvas (at most every ``PREVIEW_INTERVAL`` s) until the job ends.
        ``retry_on_oom`` makes the cheaper variant the worker runs once if the job runs out of memory."""
        request = GeneratorJobRequest(
            kind, make_generator, description or kind, retry_on_oom=retry_on_oom, retry_description=retry_description
        )
        job = self.runner.submit(request)
        if job.active:
            self._backend_jobs[job.id] = _BackendJob(on_result, self._generation, self._canvas, preview_rect)
        elif job.state == JobState.DONE:  # a sync runner ran it inside submit
            on_result(job.result)
        elif job.state == JobState.FAILED:
            self.error.emit(f"{job.description} failed", job.error or "")
        return job

    def _on_reset(self) -> None:
        self._generation += 1
        for job_id in list(self._backend_jobs):  # their results belong to the replaced document
            self.runner.cancel(job_id, reason="its document was closed")
        self._inpainted_from.clear()
        self._inverted.clear()
        self._preview_pending = None
        self._preview_timer.stop()
        self._end_preview(self._preview_job)
        for key in [k for k in self._pti_registered if k not in self.doc.pti_weights]:
            self.runner.models.remove(key)  # tuned weights of the replaced document
            self._pti_registered.discard(key)

    def resize_image(self, width: int, height: int) -> bool:
        """Scale every layer and mask to ``width`` x ``height`` (one undo step), the scaling done on a helper
        thread (a 6000 x 6000 layer takes seconds) with a box that can cancel it; job results wait meanwhile, so
        nothing changes the document under it. False when cancelled (nothing changed)."""
        doc = self.doc
        if (width, height) == doc.size:
            return True
        layers, size = doc.saved_layers(), doc.size
        progress = FileProgress(f"Resizing to {width} x {height}...", abandon=True)
        try:
            scaled = self._off_gui_thread(
                lambda: scale_layers(layers, size, width, height, progress=progress), progress
            )
        except FileWorkCancelled:
            self.status.emit("Resize cancelled: the picture is as it was")
            return False
        doc.resize_image(width, height, layers=scaled)
        return True

    def _on_resized(self) -> None:
        self._canvas += 1
        for job_id in list(self._backend_jobs):  # their results have the old size and place
            self.runner.cancel(job_id, reason=_RESIZED)
        self._preview_pending = None
        self._preview_timer.stop()
        self._end_preview(self._preview_job)

    def _on_model_changed(self) -> None:
        problems = self._register_pti()
        if problems:
            self.error.emit("Tuned layers render with the base model", "\n".join(problems))

    def _register_pti(self) -> list[str]:
        """Register tuned copies of the loaded model for the document's tuned weights made with it (by name) that
        are not registered yet, so renders of their layers use them; returns what could not be registered."""
        model, problems = self.session.model, []
        if model is None:
            return problems
        for key, pti in self.doc.pti_weights.items():
            if key in self._pti_registered or pti.model_name != model.name:
                continue
            try:
                self.runner.models.set(key, tuned_model(model, pti), compile=False)
            except ValueError as e:
                problems.append(str(e))
                continue
            self._pti_registered.add(key)
        return problems

    # ----------------------------------------------------------------------------------------------------------
    # Live previews of running jobs (a canvas overlay: never part of the document or its history)

    def _on_job_progress(self, job_id: int, _fraction: float, _message: str, preview: object) -> None:
        backend = self._backend_jobs.get(job_id)
        if (
            backend is None
            or backend.preview_rect is None
            or (backend.generation, backend.canvas)
            != (
                self._generation,
                self._canvas,
            )
        ):
            return
        if not isinstance(preview, np.ndarray) or (preview is self._preview_shown and job_id == self._preview_job):
            return
        self._preview_pending = (job_id, preview, backend.preview_rect)
        wait = PREVIEW_INTERVAL - (time.perf_counter() - self._preview_time)
        if wait <= 0:
            self._show_preview()
        elif not self._preview_timer.isActive():
            self._preview_timer.start(math.ceil(wait * 1000))

    def _show_preview(self) -> None:
        self._preview_timer.stop()
        pending, self._preview_pending = self._preview_pending, None
        if pending is None or pending[0] not in self._backend_jobs:
            return
        job_id, image, rect = pending
        self._preview_job, self._preview_shown, self._preview_time = job_id, image, time.perf_counter()
        self.preview_changed.emit(image, rect)

    def _end_preview(self, job_id: int) -> None:
        """Remove a job's preview (pending or shown)."""
        if self._preview_pending is not None and self._preview_pending[0] == job_id:
            self._preview_pending = None
            self._preview_timer.stop()
        if job_id and self._preview_job == job_id:
            self._preview_job, self._preview_shown = 0, None
            self.preview_changed.emit(None, None)

    def _on_job_finished(self, job_id: int, result: object) -> None:
        if self._io_depth:  # (an open would replace the document the result is about to land in)
            self._held_results.append((job_id, result))
            return
        self._end_preview(job_id)
        backend = self._backend_jobs.pop(job_id, None)
        if backend is not None:
            if backend.generation == self._generation and backend.canvas == self._canvas:
                backend.on_result(result)
            elif (job := self.runner.job(job_id)) is not None:
                what = "its document was closed" if backend.generation != self._generation else _RESIZED
                self.status.emit(f"{job.description}: done, but {what} meanwhile (result dropped)")
            return
        if not isinstance(result, GenerateResult):
            return
        job = self.runner.job(job_id)
        if job is None or not isinstance(job.request, GenerateRequest):
            return
        request: GenerateRequest = job.request
        generation = self._generates.pop(job_id, self._generation)
        model = self.session.model
        if model is None or request.model_key != self.session.key:  # the model changed meanwhile
            self.status.emit(f"Sample (seed {request.seed}) dropped: another model was opened before it was done")
            return
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
            class_index=result.class_index,
            anchor=result.anchor,
        )
        self.doc.model_path = model.path
        name = sample_name(result.seed, result.class_index)
        layer = make_gan_layer(pixels, state, name=name)
        self.doc.add_layer(layer, text=f"New sample (seed {name.removeprefix('Sample ')})")
        self.sample_added.emit(layer.id)

    def _on_job_cancelled(self, job_id: int) -> None:
        self._end_preview(job_id)
        self._generates.pop(job_id, None)
        self._backend_jobs.pop(job_id, None)

    def _on_job_failed(self, job_id: int, message: str) -> None:
        self._end_preview(job_id)
        self._generates.pop(job_id, None)
        job = self.runner.job(job_id)
        if self._backend_jobs.pop(job_id, None) is not None:
            self.error.emit(f"{job.description if job is not None else 'Job'} failed", message)
        elif job is not None and job.kind == "generate":
            self.error.emit("Sampling failed", message)

    # ----------------------------------------------------------------------------------------------------------
    # Projects (.ora)

    def save_project(self, path: str | Path) -> bool:
        """Save all layers, masks and latents as OpenRaster (written on a helper thread from a snapshot); marks the
        document clean unless a job changed it meanwhile."""
        from editor.project import save_project

        path = Path(path)
        doc = self.doc
        # Pixels and tuned weights are values (replaced, never written in place); masks are copied.
        layers = doc.saved_layers()
        size, pti_weights = doc.size, dict(doc.pti_weights)
        model_path = str(doc.model_path) if doc.model_path else None
        stack = doc.undo_stack
        state = (stack.index(), stack.count(), self._generation)
        progress = FileProgress(f"Saving {path.name}...")
        kept = _left_as_it_was(path)
        try:
            self._off_gui_thread(
                lambda: save_project(
                    path, *size, layers, model_path=model_path, pti_weights=pti_weights, progress=progress
                ),
                progress,
            )
        except FileWorkCancelled:
            self.status.emit(f"Save cancelled: {kept}")
            return False
        except OSError as e:  # (the message names the file asked for, not the temporary file it writes first)
            self.error.emit("Save failed", f"cannot write {path} ({e.strerror or e})")
            return False
        except ValueError as e:
            self.error.emit("Save failed", f"{path.name}: {e}")
            return False
        if self._generation != state[2]:  # (another document was opened meanwhile: it is not this file)
            self.status.emit(f"Saved {path.name}")
            return True
        self.doc.set_path(path)
        if (stack.index(), stack.count()) == state[:2]:
            stack.setClean()
            self.status.emit(f"Saved {path.name}")
        else:
            self.status.emit(f"Saved {path.name}; what changed while it was written is not saved yet")
        return True

    def open_project(self, path: str | Path) -> bool:
        """Open an .ora (ours or another program's); damaged parts are skipped with a warning. Tuned weights are
        registered now if their model is loaded, else when it is opened."""
        from editor.project import load_project
        from ganmodels.ora import OraError

        path = Path(path)
        model = self.session.model
        key = self.session.key
        try:
            project = self._off_gui_thread(
                lambda: load_project(
                    path,
                    model_key=key,
                    model_name=model.name if model is not None else "",
                    model_path=model.path if model is not None else None,
                ),
                FileProgress(f"Opening {path.name}...", abandon=True),
            )
        except FileWorkCancelled:
            self.status.emit(_not_opened(path))
            return False
        except (OraError, OSError) as e:
            self.error.emit("Cannot open project", str(e))
            return False
        layers, warnings = project.layers, project.warnings
        if not layers:
            self.error.emit("Cannot open project", f"{path.name}: no layer could be read. " + " ".join(warnings))
            return False
        self.doc.reset_to(
            project.width,
            project.height,
            layers,
            path=path,
            pti_weights=project.pti_weights,
            keep_file=bool(project.losses),
        )
        warnings += self._register_pti()
        if project.losses:
            warnings.append(
                f"{path.name} has things this editor cannot keep: " + "; ".join(project.losses) + ". Saving keeps "
                "what you see here, so Save Project asks for a file name and leaves this file as it is."
            )
        if warnings:
            self.error.emit("Project opened with problems", "\n".join(warnings))
        self.status.emit(f"Opened {path.name} ({len(layers)} layers)")
        return True

    # ----------------------------------------------------------------------------------------------------------
    # Invert and inpaint

    def inversion_mask_layer(self) -> Layer | None:
        """The layer whose mask an inversion would leave out of the picture, or None (no mask): the active layer's,
        or with an inversion's result active, the mask of the layer that inversion came from."""
        layer = self.doc.active_layer
        if layer is not None and not layer.mask.any():  # an inversion's result is active: its picture's mask
            origin = self.doc.find(self._inverted.get(layer.id, ""))
            layer = origin if origin is not None and origin.mask.any() else layer
        return layer if layer is not None and layer.mask.any() else None

    def invert_image(self, *, steps: int = DEFAULT_INVERT_STEPS, pti_steps: int = 0) -> Job | None:
        """Invert the visible picture (its centred square) into a new GAN layer, ignoring the active layer's mask.
        Layers made by earlier inversions are left out of the picture: another inversion (say with pivotal tuning
        after a plain one) inverts the picture they were made from, not their render, and with such a layer active
        it ignores the mask that inversion ignored.

        With ``pti_steps``, pivotal tuning then fine-tunes a copy of the generator for this layer in the same job:
        the layer renders with its tuned weights (``GanState.pti_weights``), every other layer with the base model.
        The steps' previews are shown on the canvas while the job runs."""
        if not self.session.loaded:
            self.error.emit("No model", "Open a model first (File > Open model).")
            return None
        model, key = self.session.model, self.session.key
        assert model is not None
        earlier = [la for la in self.doc.layers if la.id in self._inverted and la.visible and la.opacity > 0]
        skip = {la.id for la in earlier}
        if not any(la.visible and la.opacity > 0 for la in self.doc.layers if la.id not in skip):
            what = "only layers made by inversions are" if skip else "no layer is"
            self.error.emit("Nothing to invert", f"{what.capitalize()} visible: there is no picture to invert.")
            return None
        rect = centered_square(*self.doc.size)
        image = self.doc.flatten_rgb(exclude=skip)[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w].copy()
        left_out = ""
        if earlier:
            names = ", ".join(repr(la.name) for la in earlier)
            by = "an earlier inversion" if len(earlier) == 1 else "earlier inversions"
            left_out = f" (the picture without {names}, made by {by})"
        layer = self.inversion_mask_layer()
        mask_from = layer.id if layer is not None else ""
        mask = None
        if layer is not None:
            mask = layer.mask[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w].copy()
            if mask.min() >= 1:
                self.error.emit("Nothing to invert", "The mask covers the whole picture.")
                return None

        refine_steps = max(steps // 4, 20)  # with the model's encoder: its guess, then this many steps

        def make(model=model, cheap: bool = False):
            import torch

            from ganmodels.components import load_encoder, load_perceptual
            from ganmodels.encoder import invert_with_encoder
            from ganmodels.inversion import image_to_tensor, invert, mask_to_known, pivotal_tuning
            from ganmodels.losses import psnr

            g = torch.Generator().manual_seed(0)
            encoder = load_encoder(model)
            # D features (the largest activations) for plain optimisation and PTI; after the encoder's guess the
            # refinement uses the pixel loss
            wants_features = not cheap and (encoder is None or pti_steps)
            perceptual = load_perceptual(model) if wants_features else None
            if encoder is not None:
                n = refine_steps
                inversion = invert_with_encoder(
                    encoder,
                    model.G,
                    image,
                    num_steps=n,
                    mask=mask,
                    optimize_noise=False,
                    preview_every=PREVIEW_EVERY,
                    generator=g,
                )
            else:
                n = steps
                inversion = invert(
                    model.G,
                    image,
                    mask=mask,
                    num_steps=n,
                    perceptual=perceptual,
                    optimize_noise=False,
                    preview_every=PREVIEW_EVERY,
                    generator=g,
                )
            if not pti_steps:
                last, _preview = yield from progress_stage(inversion)
                return last
            share = n / (n + pti_steps)
            last, preview = yield from progress_stage(inversion, span=share, label="Inverting")
            tuning = pivotal_tuning(
                model.G,
                last.ws,
                image,
                mask=mask,
                noise=last.noise,
                num_steps=pti_steps,
                perceptual=perceptual,
                preview_every=PREVIEW_EVERY,
                generator=g,
            )
            tuned, _preview = yield from progress_stage(
                tuning, start=share, span=1 - share, label="Tuning", preview=preview
            )
            weights = PtiWeights.from_tuned(model.name, tuned.weights)
            tuned_m = tuned_model(model, weights)
            ws = np.asarray(last.ws[0].cpu(), np.float32)  # [num_ws, w_dim]
            out = render_ws(tuned_m.G, ws)  # [R, R, 3], exactly what a render of the layer gives
            res = model.G.img_resolution
            known = mask_to_known(mask, resolution=res) if mask is not None else None
            out_t = torch.from_numpy(out).permute(2, 0, 1)[None] * 2 - 1  # [1, 3, R, R] in [-1, 1]
            quality = float(psnr(out_t, image_to_tensor(image, resolution=res), weight=known))
            return PtiInversion(ws, weights, tuned_m, out, quality, last.psnr)

        def done(step) -> None:
            state = GanState(
                model_key=key,
                model_path=str(model.path) if model.path else None,
                model_name=model.name,
                ws=np.asarray(step.ws[0].cpu(), np.float32),
                placement=rect,
            )
            pixels = place_rgb(step.preview, rect, *self.doc.size)
            new = make_gan_layer(pixels, state, name=f"Inverted ({step.psnr:.1f} dB)")
            self.doc.add_layer(new, text="Invert image")
            self._inverted[new.id] = mask_from
            self.status.emit(f"Inverted{left_out}: PSNR {step.psnr:.2f} dB on known pixels")

        def done_pti(result: PtiInversion) -> None:
            pti_key = new_pti_key(key)
            self.doc.pti_weights[pti_key] = result.weights
            self.runner.models.set(pti_key, result.model, compile=False)
            self._pti_registered.add(pti_key)
            state = GanState(
                model_key=key,
                model_path=str(model.path) if model.path else None,
                model_name=model.name,
                ws=result.ws,
                placement=rect,
                pti_weights=pti_key,
            )
            pixels = place_rgb(result.image, rect, *self.doc.size)
            new = make_gan_layer(pixels, state, name=f"Inverted + PTI ({result.psnr:.1f} dB)")
            self.doc.add_layer(new, text="Invert image with pivotal tuning")
            self._inverted[new.id] = mask_from
            self.status.emit(
                f"Inverted with pivotal tuning{left_out}: PSNR {result.psnr_inverted:.2f} -> {result.psnr:.2f} dB "
                "on known pixels"
            )

        retry = dict(retry_on_oom=lambda: make(*oom_variant(model)), retry_description=oom_retry_description(model))
        how = f"encoder + {refine_steps} steps" if "encoder" in model.components else f"{steps} steps"
        if pti_steps:
            description = f"Invert + pivotal tuning ({how} + {pti_steps} steps)"
            return self.run_backend_job("invert", make, done_pti, description=description, preview_rect=rect, **retry)
        return self.run_backend_job("invert", make, done, description=f"Invert ({how})", preview_rect=rect, **retry)

    def inpaint(self, method: str, *, steps: int = 150, tune_steps: int = 0) -> Job | None:
        """Fill the active layer's mask of the visible picture with ``method`` into a new layer; ``tune_steps``
        (gan-inversion) fine-tunes a copy of the generator on the known pixels after the inversion (PTI).

        With an inpaint result active (it has no mask of its own), the mask it filled is filled again, so another
        method can be tried straight away."""
        import numpy as np

        from ganmodels.inpainting import available_methods, has_known_pixels

        if method not in available_methods():
            self.error.emit("Inpaint", f"unknown method {method!r}")
            return None
        layer = self.doc.active_layer
        if layer is not None and not layer.mask.any():
            origin = self.doc.find(self._inpainted_from.get(layer.id, ""))
            layer = origin if origin is not None and origin.mask.any() else layer
        if layer is None or not layer.mask.any():
            masked = [la.name for la in reversed(self.doc.layers) if la.mask.any()]
            where = f" The mask is on the layer {masked[0]!r}: select it to repair that area." if masked else ""
            self.error.emit("Nothing to inpaint", f"Paint a mask over the area to repair first (brush: B).{where}")
            return None
        if not has_known_pixels(layer.mask):
            self.error.emit(
                "Nothing to inpaint from", "The mask covers the whole picture: nothing is left to fill it from."
            )
            return None
        source_id = layer.id
        needs_model = method.startswith("gan")
        if needs_model and not self.session.loaded:
            self.error.emit("No model", f"{method} needs a model: open one first, or choose a classical method.")
            return None
        model = self.session.model
        image = self.doc.flatten_rgb().copy()
        mask = layer.mask.copy()

        def make(model=model, cheap: bool = False):
            from ganmodels.components import load_encoder, load_inpainter, load_perceptual
            from ganmodels.inpainting import create_inpainter

            kw = {}
            if method == "gan-inpainter":
                kw = dict(net=load_inpainter(model))
            elif needs_model:
                perceptual = None if cheap else load_perceptual(model)
                kw = dict(G=model.G, num_steps=steps, perceptual=perceptual, encoder=load_encoder(model))
                if tune_steps:
                    kw["tune_steps"] = tune_steps
            return create_inpainter(method, **kw).run(image, mask)

        label = method_label(method) + (" + PTI" if tune_steps and method == "gan-inversion" else "")

        def done(step) -> None:
            rgba = np.concatenate([step.result, (mask > 0).astype(np.float32)[..., None]], axis=2)
            new = make_raster_layer(self.doc.width, self.doc.height, name=f"Inpainted ({label})", pixels=rgba)
            self.doc.add_layer(new, text=f"Inpaint ({label})")
            self._inpainted_from[new.id] = source_id
            self.status.emit(f"Inpainted with {label}")

        retry = (
            dict(retry_on_oom=lambda: make(*oom_variant(model)), retry_description=oom_retry_description(model))
            if needs_model
            else {}
        )
        return self.run_backend_job("inpaint", make, done, description=f"Inpaint ({label})", **retry)

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
