"""Helpers for the editor's Qt tests: isolated windows, fake models for the job runner, slider gestures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from PySide6.QtWidgets import QSlider

from editor.jobs import JobRunner
from editor.settings import Settings


def window_factory(qtbot, tmp_path: Path) -> Iterator:
    """Body of a factory fixture: yields ``make(model=None, sync=True)`` -> a MainWindow with settings in
    ``tmp_path``, its own sync (or threaded) runner and optionally a model loaded; shuts the runners down after."""
    from editor.mainwindow import MainWindow

    runners: list[JobRunner] = []

    def make(*, model: Path | None = None, sync: bool = True):
        runner = JobRunner(sync=sync)
        runners.append(runner)
        window = MainWindow(settings=Settings.at_path(tmp_path / "settings.ini"), runner=runner)
        window.ask_before_discarding = False
        qtbot.addWidget(window)
        if model is not None:
            assert window.open_model(model), "the test model should load"
        return window

    yield make
    for runner in runners:
        assert runner.shutdown(timeout=10), "the worker thread should stop"


def running_runner() -> Iterator[JobRunner]:
    """Body of a fixture: a JobRunner with its worker thread, stopped afterwards."""
    runner = JobRunner(sync=False, torch_threads=1)
    yield runner
    assert runner.shutdown(timeout=10), "the worker thread should stop"


class CountingSynthesis(torch.nn.Module):
    """A stand-in synthesis network: sleeps ``delay`` seconds per call, renders ws[:, 0, :3] as a flat colour."""

    def __init__(self, *, resolution: int = 8, delay: float = 0.0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros([]))  # synthesize() reads the device from a parameter
        self.resolution = resolution
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        with self.lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        color = ws[:, 0, :3].clamp(-1, 1)  # [N, 3]
        return color[:, :, None, None].expand(-1, -1, self.resolution, self.resolution).contiguous()


class FakeG(torch.nn.Module):
    """Just enough of a Generator for RenderRequest: ``synthesis`` and parameters."""

    def __init__(self, **kw) -> None:
        super().__init__()
        self.synthesis = CountingSynthesis(**kw)


class FakeModel:
    """What the runner's model registry holds: an object with ``G``."""

    def __init__(self, **kw) -> None:
        self.G = FakeG(**kw)


def slow_steps(*, steps: int, delay: float, started: threading.Event | None = None) -> Iterator[dict]:
    """A long fake backend generator: ``steps`` steps of ``delay`` seconds each."""
    for i in range(steps):
        if started is not None:
            started.set()
        time.sleep(delay)
        yield {"step": i}


def drag_slider(slider: QSlider, positions: list[int]) -> None:
    """Press, move through ``positions`` and release, as a mouse drag does."""
    slider.setSliderDown(True)
    for p in positions:
        slider.setValue(p)
    slider.setSliderDown(False)
