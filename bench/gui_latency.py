"""GUI latency: slider -> frame latency through the real threaded job runner, and the longest main-thread stall
while a long backend job runs. Prints figures (not a test).

    python bench/gui_latency.py [--res 64 128] [--moves 50] [--job-seconds 5] [--threads N]

Uses the shipped default model when present, else random StyleGAN2 generators (64 px, and 128 px for the goal
below) with one random direction. Latency is measured from the slider value change to the moment the new
composite is handed to the canvas (``CanvasController.frame_presented``); a frame answers every move made before
the render it shows was requested.

Goals: p50 <= 40 ms at 128 px on a small CPU; no main-thread stall > 50 ms (10 ms heartbeat QTimer).
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
import torch
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from editor.jobs import GeneratorJobRequest, JobRunner, JobState, RenderResult
from editor.mainwindow import MainWindow
from editor.settings import Settings
from ganmodels.directions import Direction
from ganmodels.modelfile import GanModel, load_model
from ganmodels.networks import GeneratorConfig, random_c


def spin(ms: float) -> None:
    """Run the event loop for ``ms`` milliseconds."""
    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def wait_until(cond, timeout_s: float = 30.0) -> None:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("condition not met")
        spin(5)


def random_model(res: int) -> GanModel:
    """A random-weight StyleGAN2 like the shipped one (channel_base 2048, cap 128, 2 mapping layers)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(img_resolution=res, channel_base=2048, channel_max=128, mapping_layers=2)
    G = cfg.build().eval().requires_grad_(False)
    v = torch.randn(G.w_dim, generator=torch.Generator().manual_seed(1))
    d = Direction("random", v / v.norm(), (0, G.num_ws), method="manual", scale=1.0)
    return GanModel(G=G, config=cfg, card={"name": f"random-{res}px"}, directions={"random": d})


def default_model() -> GanModel | None:
    from ganmodels.resources import default_model_path

    try:
        return load_model(default_model_path())
    except FileNotFoundError:
        return None


class Heartbeat:
    """A 10 ms QTimer; records the gaps between its ticks."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.interval = interval_ms
        self.gaps: list[float] = []
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps.clear()
        self.clock.start()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        self.gaps.append(self.clock.nsecsElapsed() / 1e6)
        self.clock.restart()

    def stalls(self) -> tuple[float, float, int]:
        """(longest stall, p99 stall, count over 50 ms): a stall is a gap minus the interval, in ms."""
        s = sorted(max(0.0, g - self.interval) for g in self.gaps) or [0.0]
        return s[-1], s[min(len(s) - 1, int(0.99 * len(s)))], sum(1 for x in s if x > 50)


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q / 100 * (len(v) - 1)))]


worker_ms: list[float] = []  # render + placement time of each render on the worker, in ms


def measure_slider(window: MainWindow, *, moves: int, interval_ms: float) -> tuple[list[float], int]:
    """Drag the first direction slider through ``moves`` positions, one every ``interval_ms``.

    Returns (latency in ms of every move, number of frames shown)."""
    panel, ctl = window.latent_panel, window.latent_controller
    slider = next(iter(panel.sliders.values())).slider
    pending: list[tuple[float, object]] = []  # (time of the move, target state after it)
    latencies: list[float] = []
    frames = 0
    applied: list[object] = []

    def on_applied(state: object) -> None:
        applied.append(state)

    def on_presented(t: float) -> None:
        nonlocal frames
        if not applied:
            return
        state = applied[-1]
        applied.clear()
        frames += 1
        idx = next((i for i, (_t, s) in enumerate(pending) if s is state), None)
        if idx is None:
            return
        for t_move, _s in pending[: idx + 1]:
            latencies.append((t - t_move) * 1000)
        del pending[: idx + 1]

    def on_finished(_job_id: int, result: object) -> None:
        if isinstance(result, RenderResult):
            worker_ms.append(result.seconds * 1000)

    worker_ms.clear()
    ctl.frame_applied.connect(on_applied)
    window.canvas_controller.frame_presented.connect(on_presented)
    window.runner.job_finished.connect(on_finished)
    slider.setSliderDown(True)
    lo, hi = slider.minimum(), slider.maximum()
    positions = np.linspace(lo + (hi - lo) * 0.55, hi, moves).round().astype(int)
    for p in positions:
        t = time.perf_counter()
        slider.setValue(int(p))
        gesture = ctl._gesture
        if gesture is not None:
            pending.append((t, gesture.target))
        spin(interval_ms)
    slider.setSliderDown(False)
    wait_until(lambda: ctl._gesture is None)
    spin(50)
    ctl.frame_applied.disconnect(on_applied)
    window.canvas_controller.frame_presented.disconnect(on_presented)
    window.runner.job_finished.disconnect(on_finished)
    # Reset for the next run (one undo step back).
    window.doc.undo_stack.undo()
    spin(50)
    return latencies, frames


def measure_drags(window, hb: Heartbeat, *, moves: int, title: str) -> None:
    """Single moves every 100 ms, then a 60 Hz drag: print latency percentiles and main-thread stalls."""
    for label, interval in (("one move / 100 ms", 100.0), ("drag at 60 Hz", 16.0)):
        hb.start()
        lat, frames = measure_slider(window, moves=moves, interval_ms=interval)
        hb.stop()
        worst, p99, over = hb.stalls()
        print(
            f"{title} -> frame, {label:>17}: p50 {pct(lat, 50):5.1f} ms  p95 {pct(lat, 95):5.1f} ms  "
            f"max {max(lat):5.1f} ms  ({len(lat)} moves, {frames} frames, worker {pct(worker_ms, 50):.1f} ms/frame); "
            f"main-thread stall max {worst:.1f} ms, p99 {p99:.1f} ms, {over} > 50 ms"
        )


def long_job(G, seconds: float):
    """A fake backend generator: forward + backward passes through G (what inversion does) for ``seconds``."""
    ws = G.mapping(torch.randn(1, G.z_dim), random_c(G, 1, generator=torch.Generator())).detach().requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=0.01)
    t0 = time.perf_counter()
    step = 0
    while time.perf_counter() - t0 < seconds:
        img = G.synthesis(ws, noise_mode="const")
        loss = img.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        yield {"step": step, "fraction": min(1.0, (time.perf_counter() - t0) / seconds), "message": f"step {step}"}


def run(model: GanModel, args: argparse.Namespace) -> None:
    runner = JobRunner(torch_threads=args.threads)
    settings = Settings.at_path(Path(tempfile.mkdtemp()) / "bench.ini")
    window = MainWindow(settings=settings, runner=runner)
    window.ask_before_discarding = False
    window.resize(1400, 900)
    window.show()
    if not model.directions:  # sliders need a direction: add a random one
        v = torch.randn(model.w_dim, generator=torch.Generator().manual_seed(1))
        model.directions["random"] = Direction("random", v / v.norm(), (0, model.num_ws), scale=1.0)
    window.session.set_model(model)
    window.editor.new_document(args.doc, args.doc)
    window.editor.generate(seed=1, truncation=0.7)
    wait_until(lambda: len(window.doc.layers) == 2)
    spin(200)
    res = model.resolution
    print(f"\n== {model.name}: {res} px, {model.num_ws} x {model.w_dim} ws, document {args.doc} px, "
          f"worker torch threads {runner.torch_threads} ==")  # fmt: skip

    # Warm-up, then the measured drags.
    measure_slider(window, moves=10, interval_ms=60)
    hb = Heartbeat()
    measure_drags(window, hb, moves=args.moves, title="slider")

    if args.compile:  # the app compiles the renderer in the background; here blocking, then measure again
        renderer = window.runner.models.renderer(window.session.key)
        hb.start()
        thread = renderer.start_background(threads=runner.torch_threads)
        while thread.is_alive():
            spin(100)
        hb.stop()
        worst, p99, over = hb.stalls()
        print(f"renderer: {renderer.status}; main-thread stall while compiling max {worst:.1f} ms, {over} > 50 ms")
        measure_drags(window, hb, moves=args.moves, title="compiled slider")

    # Main-thread stalls while a long job runs (alone, then with slider drags on top).
    G = model.G
    hb.start()
    t0 = time.perf_counter()
    job = runner.submit(GeneratorJobRequest("fake-invert", lambda: long_job(G, args.job_seconds)))
    wait_until(lambda: not job.active, timeout_s=args.job_seconds * 10 + 30)
    elapsed = time.perf_counter() - t0
    hb.stop()
    worst, p99, over = hb.stalls()
    state = "done" if job.state == JobState.DONE else job.state.value
    print(
        f"long job ({args.job_seconds:.0f} s of forward+backward, {state} in {elapsed:.1f} s): main-thread stall "
        f"max {worst:.1f} ms, p99 {p99:.1f} ms, {over} > 50 ms ({len(hb.gaps)} heartbeats)"
    )
    hb.start()
    job = runner.submit(GeneratorJobRequest("fake-invert", lambda: long_job(G, args.job_seconds)))
    spin(300)
    lat, frames = measure_slider(window, moves=args.moves, interval_ms=50)
    runner.cancel(job.id)
    t_cancel = time.perf_counter()
    wait_until(lambda: not job.active)
    cancel_ms = (time.perf_counter() - t_cancel) * 1000
    hb.stop()
    worst, p99, over = hb.stalls()
    print(
        f"slider during the long job: p50 {pct(lat, 50):5.1f} ms  p95 {pct(lat, 95):5.1f} ms ({frames} frames); "
        f"main-thread stall max {worst:.1f} ms, p99 {p99:.1f} ms, {over} > 50 ms; cancel took {cancel_ms:.0f} ms"
    )
    window.close()
    runner.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, nargs="+", default=None, help="random models of these sizes (default 64 128)")
    ap.add_argument("--moves", type=int, default=50)
    ap.add_argument("--job-seconds", type=float, default=5.0)
    ap.add_argument("--doc", type=int, default=512, help="document size in pixels")
    ap.add_argument("--threads", type=int, default=None, help="worker torch threads (default: cores - 1)")
    ap.add_argument("--compile", action="store_true", help="also measure with the torch.compile'd renderer")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, Qt platform {app.platformName()}")
    models = []
    if args.res is None:
        shipped = default_model()
        models.append(shipped if shipped is not None else random_model(64))
        models.append(random_model(128))
    else:
        models = [random_model(r) for r in args.res]
    for model in models:
        run(model, args)


if __name__ == "__main__":
    main()
