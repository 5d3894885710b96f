"""Background jobs: immutable requests, job records and one worker thread that runs them.

The GUI thread builds a frozen request holding everything a job needs (the worker never reads widgets or the
document) and calls ``JobRunner.submit``. The worker delivers results back through queued signals, so every
``Job`` record is changed on the GUI thread only.

- Renders are *latest wins*: each ``RenderRequest`` gets a per-layer stamp; a newer request for the same layer
  replaces a pending one, and a result whose stamp is no longer the newest is dropped (``job_cancelled``) instead
  of being delivered (stylegan3 visualizer's AsyncRenderer).
- Long backend operations are generators (``GeneratorJobRequest``): every yielded step is progress (``fraction``,
  ``message``, ``preview`` attributes are read when present) and a point where the job may be cancelled. Pending
  renders are served between steps, so sliders stay live during an inversion.
- Exceptions (including ``torch.OutOfMemoryError``) become ``job_failed`` messages; the worker never dies. A
  generator job may declare a cheaper fallback (``retry_on_oom``: smaller batch, CPU); after running out of memory
  the worker frees what it can and runs the fallback once.
- ``JobRunner(sync=True)`` runs each job inline inside ``submit`` (for tests, like napari's force_sync).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from editor.raster import Rect, place_rgb, to_display
from ganmodels.anchors import pick_anchor
from ganmodels.device import lazy_torch_imports
from ganmodels.fastrender import Builder, CompileState, FastSynthesis, SubprocessBuilder
from ganmodels.generate import seed_to_class, seeds_to_ws, synthesize, to_float01, truncation_centre

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.05  # seconds between progress signals of one job (the last step is always reported)
KEEP_FINISHED = 50  # finished listed jobs remembered for the Jobs panel


# --------------------------------------------------------------------------------------------------------------
# Requests (immutable; built on the GUI thread)


def _readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a square render goes: resized into ``rect`` of a width x height transparent RGBA layer."""

    rect: Rect
    width: int
    height: int


@dataclasses.dataclass(frozen=True, eq=False)
class RenderRequest:
    """Render ws [num_ws, w_dim] with a registered model. ``stamp`` is set by ``JobRunner.submit``."""

    layer_id: str
    model_key: str
    ws: np.ndarray  # [num_ws, w_dim]
    noise_mode: str = "const"
    stamp: int = 0
    placement: Placement | None = None
    kind = "render"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ws", _readonly(self.ws))


@dataclasses.dataclass(frozen=True)
class GenerateRequest:
    """A new sample from a seed: maps the seed (psi = 1), truncates towards a centre and renders. The centre is the
    latent of the anchor the seed draws when the model has anchors and ``near_anchor`` (``ganmodels.anchors``:
    samples near the training pictures; truncation 1 gives the plain sample), else its class's mean w (or
    ``w_avg``)."""

    model_key: str
    seed: int
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    placement: Placement | None = None
    class_index: int | None = None  # conditional models: the class to draw (None: the seed's own)
    near_anchor: bool = True  # models with anchors: around the anchor the seed picks (False: a plain sample)
    kind = "generate"


@dataclasses.dataclass(frozen=True)
class GeneratorJobRequest:
    """Any long backend generator (inversion, inpainting, ...). ``make_generator`` is called on the worker.

    The job's result is the generator's return value, or else its last yielded item. ``renders_between_steps``
    lets pending renders run between steps; turn it off for generators that leave shared models modified
    across a ``yield``. ``retry_on_oom`` makes a cheaper variant of the generator (a smaller batch, the CPU),
    run once from the start if the first one runs out of memory; ``retry_description`` names it for the user.
    """

    kind: str
    make_generator: Callable[[], Iterator[Any]]
    description: str = ""
    renders_between_steps: bool = True
    retry_on_oom: Callable[[], Iterator[Any]] | None = None
    retry_description: str = "with a smaller batch"


Request = RenderRequest | GenerateRequest | GeneratorJobRequest


# --------------------------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True, eq=False)
class RenderResult:
    layer_id: str
    stamp: int
    image: np.ndarray  # float32 [R, R, 3] in [0, 1]
    pixels: np.ndarray | None  # float32 [H, W, 4] placed into the document, when the request had a placement
    display: np.ndarray | None  # uint8 [H, W, 4] premultiplied canvas image of ``pixels``
    seconds: float


@dataclasses.dataclass(frozen=True, eq=False)
class GenerateResult:
    seed: int
    truncation_psi: float
    ws: np.ndarray  # [num_ws, w_dim], the seed's base latent (psi = 1)
    image: np.ndarray  # float32 [R, R, 3]
    pixels: np.ndarray | None  # float32 [H, W, 4] when the request had a placement
    display: np.ndarray | None  # uint8 [H, W, 4] premultiplied canvas image of ``pixels``
    seconds: float
    class_index: int | None = None  # the class drawn (conditional models)
    anchor: int | None = None  # the anchor drawn around (models with anchors)


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report of a running job."""

    fraction: float
    message: str = ""
    preview: np.ndarray | None = None


def progress_of(step: Any) -> Progress:
    """Read a backend step record (InvertStep, InpaintStep, or anything with similar attributes)."""
    if isinstance(step, Progress):
        return step
    fraction = getattr(step, "fraction", None)
    n, total = getattr(step, "step", None), getattr(step, "num_steps", None)
    if fraction is None and n is not None and total:
        fraction = n / total
    message = getattr(step, "message", "") or ""
    if not message and n is not None and total:
        message = f"step {n}/{total}"
        psnr = getattr(step, "psnr", None)
        if psnr is not None:
            message += f", {psnr:.1f} dB"
    preview = getattr(step, "preview", None)
    fraction = float(min(max(fraction if fraction is not None else 0.0, 0.0), 1.0))
    return Progress(fraction, message, preview if isinstance(preview, np.ndarray) else None)


def is_out_of_memory(e: BaseException) -> bool:
    """True for the errors of a device (or the host) running out of memory."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()  # e.g. the MPS backend's


def free_memory() -> None:
    """Give back what a failed job left: unreachable objects, then the devices' cached blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


def error_message(e: BaseException) -> str:
    """A message for the user from an exception raised by a job."""
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return f"Out of memory: {str(e).splitlines()[0] if str(e) else 'the device ran out of memory'}"
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, ValueError) else f"{type(e).__name__}: {text}"


# --------------------------------------------------------------------------------------------------------------
# Job records (GUI thread only)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclasses.dataclass(eq=False)
class Job:
    """What the GUI knows about one submitted request."""

    id: int
    kind: str
    description: str
    request: Any
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    message: str = ""
    result: Any = None
    error: str | None = None
    submitted: float = dataclasses.field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    cancel_reason: str = ""  # why it was cancelled when not by the user

    @property
    def active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def listed(self) -> bool:
        """Shown in the Jobs panel (renders are too frequent to list)."""
        return self.kind != "render"

    @property
    def seconds(self) -> float | None:
        """Run time, once finished."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


# --------------------------------------------------------------------------------------------------------------
# Execution (worker thread, or inline when sync)


class ModelRegistry:
    """Models by key, shared with the worker (the GUI registers; the worker only reads).

    Each model gets a ``FastSynthesis`` renderer for slider frames. After ``enable_compile`` every newly
    registered model's renderer is compiled on a background thread (eager renders meanwhile).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._renderers: dict[str, FastSynthesis] = {}
        self._compile_threads = 0  # 0: do not compile
        self._builder: Callable[[], Builder] | None = None

    def enable_compile(self, *, threads: int, builder: Callable[[], Builder] | None = None) -> None:
        """Compile the renderers of models registered from now on (``threads``: the render thread's count;
        ``builder``: makes one builder per model, by default a cached AOTInductor build in a child process)."""
        self._compile_threads = max(1, threads)
        self._builder = builder

    def set(self, key: str, model: Any, *, compile: bool = True) -> None:
        """Register ``model`` under ``key``; ``compile=False`` keeps its renderer eager (e.g. per-layer PTI copies,
        which would each cost a minute of compiling)."""
        builder = self._builder() if self._builder is not None else SubprocessBuilder()
        renderer = FastSynthesis(model.G, getattr(model, "config", None), builder=builder)
        with self._lock:
            self._models[key] = model
            self._renderers[key] = renderer
        if compile and self._compile_threads:
            renderer.start_background(threads=self._compile_threads)

    def remove(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)
            renderer = self._renderers.pop(key, None)
        if renderer is not None:
            renderer.cancel()

    def cancel_compiles(self, *, timeout: float = 5.0) -> bool:
        """Stop every renderer build under way (at exit) and wait for their threads; False if one still runs."""
        with self._lock:
            renderers = list(self._renderers.values())
        for r in renderers:
            r.cancel()
        deadline = time.monotonic() + timeout
        for r in renderers:
            r.join(max(0.0, deadline - time.monotonic()))
        return not self.compiling()

    def compiling(self) -> bool:
        """Whether a renderer is being compiled right now."""
        with self._lock:
            renderers = list(self._renderers.values())
        return any(r.state == CompileState.COMPILING for r in renderers)

    def _lookup(self, table: dict[str, Any], key: str) -> Any:
        with self._lock:
            value = table.get(key)
        if value is None:
            name = key.rsplit("#", 1)[0]  # (keys are "name#n")
            raise ValueError(f"no model is loaded for this job: {name!r} was closed or replaced before it ran")
        return value

    def renderer(self, key: str) -> FastSynthesis:
        """The batch-1 renderer of a registered model."""
        return self._lookup(self._renderers, key)

    def get(self, key: str) -> Any:
        return self._lookup(self._models, key)


def render_ws(G: Any, ws: np.ndarray, *, noise_mode: str = "const") -> np.ndarray:
    """ws [num_ws, w_dim] -> RGB float32 [R, R, 3] in [0, 1]."""
    x = torch.from_numpy(np.array(ws, dtype=np.float32))[None]  # [1, num_ws, w_dim]
    with torch.inference_mode():
        return to_float01(synthesize(G, x, noise_mode=noise_mode))[0]


def _placed(image: np.ndarray, placement: Placement | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(document-sized float RGBA, its canvas image) of a render, or (None, None) without a placement."""
    if placement is None:
        return None, None
    pixels = place_rgb(image, placement.rect, placement.width, placement.height)
    return pixels, to_display(pixels, opaque_or_clear=True)


class _Callbacks:
    """How execution reports back: signals of the worker thread, or direct calls when sync."""

    def __init__(
        self,
        started: Callable[[int, float], None],
        progress: Callable[[int, float, str, object], None],
        finished: Callable[[int, object, float], None],
        failed: Callable[[int, str, float], None],
        cancelled: Callable[[int], None],
    ) -> None:
        self.started, self.progress, self.finished, self.failed, self.cancelled = (
            started,
            progress,
            finished,
            failed,
            cancelled,
        )


@dataclasses.dataclass(eq=False)
class _Item:
    job_id: int
    request: Any
    cancel: threading.Event


class _Executor:
    """Runs one item and reports through callbacks; never raises."""

    def __init__(self, models: ModelRegistry, callbacks: _Callbacks, take_render: Callable[[], _Item | None]):
        self.models = models
        self.cb = callbacks
        self.take_render = take_render

    def run(self, item: _Item) -> None:
        if item.cancel.is_set():
            self.cb.cancelled(item.job_id)
            return
        self.cb.started(item.job_id, time.perf_counter())
        try:
            req = item.request
            if isinstance(req, RenderRequest):
                result: Any = self._render(req)
            elif isinstance(req, GenerateRequest):
                result = self._generate(req)
            elif isinstance(req, GeneratorJobRequest):
                self._run_generator(item)
                return
            else:
                raise TypeError(f"unknown request type {type(req).__name__}")
        except Exception as e:  # errors travel back as data: the worker never dies
            log.exception("job %s failed", item.job_id)
            self.cb.failed(item.job_id, error_message(e), time.perf_counter())
            return
        if item.cancel.is_set():
            self.cb.cancelled(item.job_id)
        else:
            self.cb.finished(item.job_id, result, time.perf_counter())

    def _render(self, req: RenderRequest) -> RenderResult:
        t0 = time.perf_counter()
        renderer = self.models.renderer(req.model_key)
        ws = torch.from_numpy(np.array(req.ws, dtype=np.float32))[None]  # [1, num_ws, w_dim]
        device = next(renderer.G.parameters()).device
        image = to_float01(renderer(ws.to(device), noise_mode=req.noise_mode))[0]
        pixels, display = _placed(image, req.placement)
        return RenderResult(req.layer_id, req.stamp, image, pixels, display, time.perf_counter() - t0)

    def _generate(self, req: GenerateRequest) -> GenerateResult:
        t0 = time.perf_counter()
        model = self.models.get(req.model_key)
        G, bank = model.G, model.anchors
        anchor = None
        if bank is not None and req.near_anchor:
            anchor = pick_anchor(req.seed, G, bank, class_index=req.class_index)
        class_index = None
        if G.c_dim > 0 and anchor is not None:
            class_index = int(bank.labels[anchor])
        elif G.c_dim > 0:
            class_index = seed_to_class(req.seed, G) if req.class_index is None else int(req.class_index)
        classes = None if class_index is None else [class_index]
        base = seeds_to_ws(G, [req.seed], classes=classes)  # [1, num_ws, w_dim], psi = 1
        if anchor is not None:
            centre = bank.full_ws([anchor], G.num_ws).to(base.device)  # [1, num_ws, w_dim]: the anchor's latent
        else:
            centre = truncation_centre(G, class_index)  # [w_dim]: the class's mean w for a conditional G
        ws = centre.lerp(base, req.truncation_psi) if req.truncation_psi != 1 else base
        image = to_float01(synthesize(G, ws, noise_mode=req.noise_mode))[0]
        pixels, display = _placed(image, req.placement)
        base_np = base[0].detach().float().cpu().numpy()
        seconds = time.perf_counter() - t0
        return GenerateResult(
            req.seed, req.truncation_psi, base_np, image, pixels, display, seconds, class_index, anchor
        )

    def _run_generator(self, item: _Item) -> None:
        req: GeneratorJobRequest = item.request
        note = ""
        try:
            outcome = self._drive(item, req.make_generator)
        except Exception as e:
            if req.retry_on_oom is None or not is_out_of_memory(e):
                log.exception("job %s failed", item.job_id)
                self.cb.failed(item.job_id, error_message(e), time.perf_counter())
                return
            # only text: a log record kept by a handler must not keep the failed attempt's frames (and tensors) alive
            log.warning("job %s ran out of memory (%s); retrying %s", item.job_id, str(e), req.retry_description)
            note = f"Out of memory: retried {req.retry_description}"
        if note:  # out of the except block: the failed attempt's frames and tensors are unreachable now
            assert req.retry_on_oom is not None
            free_memory()
            if item.cancel.is_set():
                self.cb.cancelled(item.job_id)
                return
            self.cb.progress(item.job_id, 0.0, note, None)
            try:
                outcome = self._drive(item, req.retry_on_oom)
            except Exception as e:
                log.exception("the retry of job %s failed", item.job_id)
                if is_out_of_memory(e):
                    detail = str(e).strip() or type(e).__name__
                    message = f"Out of memory, also when retried {req.retry_description}: {detail}"
                else:
                    message = f"{error_message(e)} (retrying {req.retry_description} after running out of memory)"
                self.cb.failed(item.job_id, message.splitlines()[0], time.perf_counter())
                return
        if outcome is None:
            self.cb.cancelled(item.job_id)
            return
        result, last = outcome
        if last is not None:
            p = progress_of(last)
            message = "; ".join(m for m in (note, p.message) if m)
            self.cb.progress(item.job_id, 1.0, message, p.preview)
        self.cb.finished(item.job_id, result, time.perf_counter())

    def _drive(self, item: _Item, make: Callable[[], Iterator[Any]]) -> tuple[Any, Any] | None:
        """Run one generator to its end: (result, last step), or None if the job was cancelled. Raises what the
        generator raises."""
        req: GeneratorJobRequest = item.request
        gen = None
        last: Any = None
        last_report = 0.0
        try:
            gen = make()
            while True:
                if item.cancel.is_set():
                    return None
                try:
                    step = next(gen)
                except StopIteration as stop:
                    return (stop.value if stop.value is not None else last), last
                last = step
                now = time.perf_counter()
                if now - last_report >= PROGRESS_INTERVAL:
                    last_report = now
                    p = progress_of(step)
                    self.cb.progress(item.job_id, p.fraction, p.message, p.preview)
                if req.renders_between_steps:
                    self._serve_renders()
        finally:
            if gen is not None and hasattr(gen, "close"):
                try:
                    gen.close()
                except Exception:
                    log.exception("closing the generator of job %s failed", item.job_id)

    def _serve_renders(self) -> None:
        while (item := self.take_render()) is not None:
            self.run(item)


class _Queue:
    """Pending work: the newest render per layer (served first) and a FIFO of other jobs."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._renders: collections.OrderedDict[str, _Item] = collections.OrderedDict()
        self._fifo: collections.deque[_Item] = collections.deque()
        self._stopped = False

    def put(self, item: _Item) -> _Item | None:
        """Queue an item; returns the pending render it replaced, if any."""
        with self._cond:
            replaced = None
            if isinstance(item.request, RenderRequest):
                replaced = self._renders.pop(item.request.layer_id, None)
                self._renders[item.request.layer_id] = item
            else:
                self._fifo.append(item)
            self._cond.notify()
            return replaced

    def remove(self, job_id: int) -> bool:
        """Take a pending job out of the queue; False if it is not pending."""
        with self._cond:
            for key, item in list(self._renders.items()):
                if item.job_id == job_id:
                    del self._renders[key]
                    return True
            for item in list(self._fifo):
                if item.job_id == job_id:
                    self._fifo.remove(item)
                    return True
            return False

    def take(self) -> _Item | None:
        """Block until there is work; None once stopped."""
        with self._cond:
            while not self._stopped and not self._renders and not self._fifo:
                self._cond.wait()
            if self._stopped:
                return None
            if self._renders:
                return self._renders.popitem(last=False)[1]
            return self._fifo.popleft()

    def take_render(self) -> _Item | None:
        with self._cond:
            if self._stopped or not self._renders:
                return None
            return self._renders.popitem(last=False)[1]

    def stop(self) -> list[_Item]:
        """Stop the worker; returns the items that never ran."""
        with self._cond:
            self._stopped = True
            left = list(self._renders.values()) + list(self._fifo)
            self._renders.clear()
            self._fifo.clear()
            self._cond.notify_all()
            return left


def warm_up() -> None:
    """Pay one-time lazy imports now (building the first torch optimizer imports for over a second, holding the
    GIL in long stretches), so the first inversion does not freeze the GUI thread. Holds ``lazy_torch_imports``:
    the renderer's compile thread imports the same modules when it loads a compiled package."""
    try:
        with lazy_torch_imports():
            torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    except Exception:  # only an optimisation
        log.debug("worker warm-up failed", exc_info=True)


def default_torch_threads() -> int:
    """Intra-op threads for the worker: leave one core to the GUI thread (at least 1, at most 8)."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _WorkerThread(QThread):
    """The one worker thread. Its signals are emitted on the worker and delivered queued to the runner."""

    started_job = Signal(int, float)  # id, perf_counter time on the worker
    progressed = Signal(int, float, str, object)
    finished_job = Signal(int, object, float)
    failed_job = Signal(int, str, float)
    cancelled_job = Signal(int)

    def __init__(self, queue: _Queue, models: ModelRegistry, *, torch_threads: int) -> None:
        super().__init__()
        self.setObjectName("gan-editor-worker")
        self.queue = queue
        self.torch_threads = torch_threads
        callbacks = _Callbacks(
            self.started_job.emit,
            self.progressed.emit,
            self.finished_job.emit,
            self.failed_job.emit,
            self.cancelled_job.emit,
        )
        self.executor = _Executor(models, callbacks, queue.take_render)

    def run(self) -> None:
        torch.set_num_threads(self.torch_threads)  # per-thread pool size for this worker's ops
        warm_up()
        while (item := self.queue.take()) is not None:
            self.executor.run(item)


class JobRunner(QObject):
    """Queues requests, runs them on one worker thread (or inline when ``sync``) and reports by signals."""

    job_added = Signal(int)
    job_started = Signal(int)
    job_progress = Signal(int, float, str, object)  # id, fraction, message, preview (float32 [H, W, 3] or None)
    job_finished = Signal(int, object)  # id, result
    job_failed = Signal(int, str)  # id, message
    job_cancelled = Signal(int)  # cancelled by the user, or a render superseded by a newer one
    count_changed = Signal(int)  # number of queued + running listed jobs

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        sync: bool = False,
        models: ModelRegistry | None = None,
        torch_threads: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.sync = sync
        self.torch_threads = torch_threads or default_torch_threads()
        self.models = models or ModelRegistry()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._stamps: dict[str, int] = collections.defaultdict(int)
        self._finished_order: collections.deque[int] = collections.deque()
        self._last_count = 0
        self._queue = _Queue()
        self._thread: _WorkerThread | None = None
        callbacks = _Callbacks(
            self._on_started, self._on_progress, self._on_finished, self._on_failed, self._on_cancelled
        )
        self._inline = _Executor(self.models, callbacks, lambda: None)
        if not sync:
            self._thread = _WorkerThread(self._queue, self.models, torch_threads=self.torch_threads)
            queued = Qt.ConnectionType.QueuedConnection
            self._thread.started_job.connect(self._on_started, queued)
            self._thread.progressed.connect(self._on_progress, queued)
            self._thread.finished_job.connect(self._on_finished, queued)
            self._thread.failed_job.connect(self._on_failed, queued)
            self._thread.cancelled_job.connect(self._on_cancelled, queued)
            self._thread.start()

    # ----------------------------------------------------------------------------------------------------------
    # API (GUI thread)

    def submit(self, request: Request, *, description: str = "") -> Job:
        """Queue a request; returns its Job record (renders get their stamp here)."""
        if isinstance(request, RenderRequest):
            self._stamps[request.layer_id] += 1
            request = dataclasses.replace(request, stamp=self._stamps[request.layer_id])
        kind = request.kind
        job = Job(next(self._ids), kind, description or getattr(request, "description", "") or kind, request)
        self._jobs[job.id] = job
        self.job_added.emit(job.id)
        self._emit_count()
        item = _Item(job.id, request, job.cancel_event)
        if self.sync:
            self._inline.run(item)
        else:
            replaced = self._queue.put(item)
            if replaced is not None:
                self._on_cancelled(replaced.job_id)
        return job

    def cancel(self, job_id: int, *, reason: str = "") -> None:
        """Cancel a queued or running job (a running generator stops at its next step); ``reason`` says why to the
        user when it was not their doing."""
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return
        job.cancel_reason = job.cancel_reason or reason
        job.cancel_event.set()
        if job.state == JobState.QUEUED and self._queue.remove(job_id):
            self._on_cancelled(job_id)

    def cancel_all(self) -> None:
        """Cancel every active job."""
        for job in list(self._jobs.values()):
            self.cancel(job.id)

    def job(self, job_id: int) -> Job | None:
        """The record of a job (finished renders are forgotten at once, other jobs after a while)."""
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Remembered jobs, oldest first."""
        return list(self._jobs.values())

    @property
    def active_count(self) -> int:
        """Queued + running listed jobs."""
        return sum(1 for j in self._jobs.values() if j.active and j.listed)

    def latest_stamp(self, layer_id: str) -> int:
        """The stamp of the newest render submitted for a layer (0 if none)."""
        return self._stamps.get(layer_id, 0)

    @property
    def running(self) -> bool:
        """True while the worker thread exists (not sync, not shut down)."""
        return self._thread is not None

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Cancel everything and stop the worker; True if it stopped within ``timeout`` seconds."""
        for job in self._jobs.values():
            job.cancel_event.set()
        for item in self._queue.stop():
            self._on_cancelled(item.job_id)
        if self._thread is None:
            return True
        stopped = self._thread.wait(int(timeout * 1000))
        if stopped:
            self._thread = None
        return stopped

    # ----------------------------------------------------------------------------------------------------------
    # Reports (GUI thread)

    @Slot(int, float)
    def _on_started(self, job_id: int, t: float) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return
        job.state = JobState.RUNNING
        job.started = t
        self.job_started.emit(job_id)

    @Slot(int, float, str, object)
    def _on_progress(self, job_id: int, fraction: float, message: str, preview: object) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active or job.cancel_event.is_set():
            return
        job.progress, job.message = fraction, message
        self.job_progress.emit(job_id, fraction, message, preview)

    @Slot(int, object, float)
    def _on_finished(self, job_id: int, result: object, t: float) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return
        if job.cancel_event.is_set():
            self._on_cancelled(job_id)
            return
        if isinstance(result, RenderResult) and result.stamp != self._stamps.get(result.layer_id):
            job.message = "superseded by a newer render"
            self._on_cancelled(job_id)
            return
        job.state, job.progress, job.result = JobState.DONE, 1.0, result
        self._close(job, t)
        self.job_finished.emit(job_id, result)
        self._emit_count()
        self._forget(job)

    @Slot(int, str, float)
    def _on_failed(self, job_id: int, message: str, t: float) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return
        job.state, job.error, job.message = JobState.FAILED, message, message
        self._close(job, t)
        self.job_failed.emit(job_id, message)
        self._emit_count()
        self._forget(job)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.active:
            return
        job.state = JobState.CANCELLED
        if job.kind != "render":
            job.message = f"cancelled: {job.cancel_reason}" if job.cancel_reason else "cancelled"
        self._close(job)
        self.job_cancelled.emit(job_id)
        self._emit_count()
        self._forget(job)

    def _close(self, job: Job, t: float | None = None) -> None:
        job.finished = t if t is not None else time.perf_counter()
        if job.started is None:
            job.started = job.finished

    def _forget(self, job: Job) -> None:
        if not job.listed:
            self._jobs.pop(job.id, None)
            return
        self._finished_order.append(job.id)
        while len(self._finished_order) > KEEP_FINISHED:
            self._jobs.pop(self._finished_order.popleft(), None)

    def _emit_count(self) -> None:
        count = self.active_count
        if count != self._last_count:
            self._last_count = count
            self.count_changed.emit(count)
