"""The job runner: latest-wins renders, cancellation, errors as data, sync mode, generate = the backend's maths."""

from __future__ import annotations

import threading
import time
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from qt_helpers import FakeModel, running_runner, slow_steps

from editor.jobs import (
    GenerateRequest,
    GenerateResult,
    GeneratorJobRequest,
    JobRunner,
    JobState,
    Placement,
    RenderRequest,
    RenderResult,
    progress_of,
)
from editor.raster import Rect
from ganmodels.generate import seeds_to_ws, synthesize, to_float01
from ganmodels.modelfile import load_model


@pytest.fixture
def threaded_runner():
    yield from running_runner()


def ws_with_colour(value: float) -> np.ndarray:
    ws = np.zeros([2, 4], np.float32)
    ws[0, :3] = value
    return ws


def test_generate_matches_the_backend(qapp, tiny_model_file):
    runner = JobRunner(sync=True)
    model = load_model(tiny_model_file)
    runner.models.set("tiny", model)
    results = []
    runner.job_finished.connect(lambda _id, r: results.append(r))
    res = model.resolution
    job = runner.submit(
        GenerateRequest("tiny", seed=7, truncation_psi=0.6, placement=Placement(Rect(0, 0, res, res), res, res))
    )
    assert job.state == JobState.DONE
    (result,) = results
    assert isinstance(result, GenerateResult)
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [7], truncation_psi=0.6)))[0]
    np.testing.assert_array_equal(result.image, expected)
    np.testing.assert_array_equal(result.pixels[..., :3], expected)
    assert (result.pixels[..., 3] == 1).all()
    np.testing.assert_array_equal(result.ws, seeds_to_ws(model.G, [7])[0].numpy())  # the base (psi = 1) latent


def test_threaded_renders_are_latest_wins(qtbot, threaded_runner):
    runner = threaded_runner
    model = FakeModel(delay=0.15)
    runner.models.set("fake", model)
    applied, dropped = [], []
    runner.job_finished.connect(lambda _id, r: applied.append(r))
    runner.job_cancelled.connect(dropped.append)
    with qtbot.waitSignal(runner.job_started, timeout=5000):  # the first render is under way ...
        jobs = [runner.submit(RenderRequest("layer", "fake", ws_with_colour(0.1)))]
    jobs += [runner.submit(RenderRequest("layer", "fake", ws_with_colour(v / 10))) for v in range(2, 6)]  # ... 4 more
    qtbot.waitUntil(lambda: all(not j.active for j in jobs), timeout=5000)
    assert len(applied) == 1, "only the newest render may be delivered"
    result = applied[0]
    assert isinstance(result, RenderResult) and result.stamp == 5 == runner.latest_stamp("layer")
    np.testing.assert_allclose(result.image[0, 0], (0.5 + 1) / 2, atol=1e-6)  # colour 0.5 in [-1, 1] -> 0.75
    assert sorted(dropped) == [j.id for j in jobs[:4]]  # the running one's stale result and 3 pending ones
    assert jobs[0].message == "superseded by a newer render"
    assert model.G.synthesis.calls == 2, "only the running render and the newest one may be computed"


def test_renders_of_different_layers_do_not_supersede_each_other(qtbot, threaded_runner):
    runner = threaded_runner
    runner.models.set("fake", FakeModel(delay=0.02))
    applied = []
    runner.job_finished.connect(lambda _id, r: applied.append(r.layer_id))
    jobs = [runner.submit(RenderRequest(name, "fake", ws_with_colour(0.1))) for name in ("a", "b", "c")]
    qtbot.waitUntil(lambda: all(not j.active for j in jobs), timeout=5000)
    assert sorted(applied) == ["a", "b", "c"]


def test_cancel_stops_a_long_generator_within_half_a_second(qtbot, threaded_runner):
    runner = threaded_runner
    started = threading.Event()
    job = runner.submit(GeneratorJobRequest("invert", lambda: slow_steps(steps=1000, delay=0.02, started=started)))
    with qtbot.waitSignal(runner.job_progress, timeout=5000):
        pass
    assert job.state == JobState.RUNNING and started.is_set()
    t0 = time.perf_counter()
    with qtbot.waitSignal(runner.job_cancelled, timeout=2000) as blocker:
        runner.cancel(job.id)
    elapsed = time.perf_counter() - t0
    assert blocker.args == [job.id]
    assert job.state == JobState.CANCELLED
    assert elapsed < 0.5, f"cancel took {elapsed:.3f} s"


def test_a_failing_job_reports_and_the_worker_keeps_working(qtbot, threaded_runner):
    runner = threaded_runner

    def boom():
        yield {"step": 0}
        raise RuntimeError("kaboom in step 2")

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield  # pragma: no cover

    with qtbot.waitSignal(runner.job_failed, timeout=5000) as failed:
        bad = runner.submit(GeneratorJobRequest("invert", boom))
    assert failed.args[0] == bad.id and "kaboom in step 2" in failed.args[1]
    assert bad.state == JobState.FAILED and bad.error == failed.args[1]
    with qtbot.waitSignal(runner.job_failed, timeout=5000) as failed:
        runner.submit(GeneratorJobRequest("inpaint", oom))
    assert failed.args[1].startswith("Out of memory")
    with qtbot.waitSignal(runner.job_failed, timeout=5000) as failed:  # a render of an unknown model
        runner.submit(RenderRequest("layer", "missing", ws_with_colour(0.1)))
    assert "no model is loaded for this job: 'missing' was closed or replaced before it ran" in failed.args[1]

    def result_generator():
        yield {"step": 0}
        return "the result"

    with qtbot.waitSignal(runner.job_finished, timeout=5000) as finished:
        good = runner.submit(GeneratorJobRequest("invert", result_generator))
    assert finished.args == [good.id, "the result"] and good.state == JobState.DONE


def test_renders_run_between_the_steps_of_a_long_job(qtbot, threaded_runner):
    runner = threaded_runner
    runner.models.set("fake", FakeModel())
    long_job = runner.submit(GeneratorJobRequest("invert", lambda: slow_steps(steps=200, delay=0.01)))
    with qtbot.waitSignal(runner.job_progress, timeout=5000):
        pass
    with qtbot.waitSignal(runner.job_finished, timeout=2000) as finished:
        runner.submit(RenderRequest("layer", "fake", ws_with_colour(0.2)))
    assert isinstance(finished.args[1], RenderResult)
    assert long_job.state == JobState.RUNNING  # the render did not wait for the long job
    runner.cancel(long_job.id)


def test_queued_jobs_can_be_cancelled_and_count_is_reported(qtbot, threaded_runner):
    runner = threaded_runner
    counts = []
    runner.count_changed.connect(counts.append)
    first = runner.submit(GeneratorJobRequest("invert", lambda: slow_steps(steps=100, delay=0.01)))
    second = runner.submit(GeneratorJobRequest("inpaint", lambda: slow_steps(steps=100, delay=0.01)))
    assert runner.active_count == 2
    runner.cancel(second.id)
    assert second.state == JobState.CANCELLED  # taken out of the queue at once
    runner.cancel(first.id)
    qtbot.waitUntil(lambda: not first.active, timeout=2000)
    assert counts[:2] == [1, 2] and counts[-1] == 0


def test_sync_runner_reports_progress_and_can_cancel_from_a_slot(qapp):
    runner = JobRunner(sync=True)
    seen = []

    def on_progress(job_id, fraction, message, _preview):
        seen.append((fraction, message))
        if len(seen) == 3:
            runner.cancel(job_id)

    runner.job_progress.connect(on_progress)
    import editor.jobs as jobs_module

    old = jobs_module.PROGRESS_INTERVAL
    jobs_module.PROGRESS_INTERVAL = 0.0
    try:
        job = runner.submit(GeneratorJobRequest("invert", lambda: slow_steps(steps=50, delay=0.0)))
    finally:
        jobs_module.PROGRESS_INTERVAL = old
    assert job.state == JobState.CANCELLED and len(seen) == 3


def test_progress_reads_backend_step_records():
    from ganmodels.inpainting import InpaintStep

    p = progress_of(InpaintStep(3, 4, "blending", preview=np.zeros([2, 2, 3], np.float32)))
    assert p.fraction == 0.75 and p.message == "blending" and p.preview is not None

    class InvertLike:
        step, num_steps, psnr, preview = 5, 10, 23.456, None

    p = progress_of(InvertLike())
    assert p.fraction == 0.5 and p.message == "step 5/10, 23.5 dB"
    assert progress_of({"anything": 1}).fraction == 0.0


def test_requests_are_immutable():
    req = RenderRequest("layer", "m", np.zeros([2, 3], np.float32))
    with pytest.raises(Exception):  # noqa: B017 - FrozenInstanceError
        req.layer_id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        req.ws[0, 0] = 1.0


# --------------------------------------------------------------------------------------------------------------
# Out of memory: one retry with the request's fallback


class OomOnce:
    """A backend whose first attempt runs out of memory holding a big tensor; the fallback finishes."""

    def __init__(self, *, fallback_error: BaseException | None = None) -> None:
        self.fallback_error = fallback_error
        self.attempts: list[str] = []
        self.first_tensor_alive_at_retry: bool | None = None
        self._first_tensor = None

    def first(self):
        self.attempts.append("first")
        big = torch.zeros(1 << 16)  # what a real job would hold when the allocation fails
        self._first_tensor = weakref.ref(big)
        yield {"step": 1, "num_steps": 4}
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def fallback(self):
        self.attempts.append("fallback")
        self.first_tensor_alive_at_retry = self._first_tensor() is not None
        if self.fallback_error is not None:
            raise self.fallback_error
        for i in range(3):
            yield SimpleNamespace(step=i + 1, num_steps=3, message=f"small batch {i + 1}")
        return "small result"


def _oom_request(backend: OomOnce, **kw) -> GeneratorJobRequest:
    return GeneratorJobRequest(
        "invert", backend.first, retry_on_oom=backend.fallback, retry_description="on the CPU", **kw
    )


def test_out_of_memory_retries_once_with_the_fallback(qtbot, threaded_runner):
    runner = threaded_runner
    backend = OomOnce()
    messages = []
    runner.job_progress.connect(lambda _id, _f, message, _p: messages.append(message))
    with qtbot.waitSignal(runner.job_finished, timeout=5000) as finished:
        job = runner.submit(_oom_request(backend))
    assert finished.args == [job.id, "small result"] and job.state == JobState.DONE
    assert backend.attempts == ["first", "fallback"]
    assert backend.first_tensor_alive_at_retry is False  # the failed attempt was freed before the retry
    assert "Out of memory: retried on the CPU" in messages
    assert messages.index("Out of memory: retried on the CPU") < messages.index("small batch 1")
    assert job.message == "Out of memory: retried on the CPU; small batch 3"  # the record keeps the note


def test_out_of_memory_in_the_fallback_fails_with_a_clear_message(qapp):
    runner = JobRunner(sync=True)
    backend = OomOnce(fallback_error=MemoryError())
    job = runner.submit(_oom_request(backend))
    assert job.state == JobState.FAILED and backend.attempts == ["first", "fallback"]
    assert job.error == "Out of memory, also when retried on the CPU: MemoryError"

    other = OomOnce(fallback_error=ValueError("the CPU model file is missing"))
    job = runner.submit(_oom_request(other))
    assert job.state == JobState.FAILED
    assert job.error == "the CPU model file is missing (retrying on the CPU after running out of memory)"


def test_only_out_of_memory_is_retried_and_only_when_a_fallback_is_declared(qapp):
    runner = JobRunner(sync=True)
    backend = OomOnce()
    job = runner.submit(GeneratorJobRequest("invert", backend.first))  # no fallback
    assert job.state == JobState.FAILED and job.error.startswith("Out of memory: CUDA out of memory")
    assert backend.attempts == ["first"]

    calls = []

    def broken():
        calls.append("broken")
        raise RuntimeError("shape mismatch")
        yield  # pragma: no cover

    def fallback():
        calls.append("fallback")
        yield {"step": 0}

    job = runner.submit(GeneratorJobRequest("invert", broken, retry_on_oom=fallback))
    assert job.state == JobState.FAILED and job.error == "RuntimeError: shape mismatch" and calls == ["broken"]
