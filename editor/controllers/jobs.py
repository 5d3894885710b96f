"""Wires the job runner to the Jobs panel and reports job timings."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from editor.jobs import JobRunner, JobState
from editor.panels.jobs import JobsPanel


class JobsController(QObject):
    timing = Signal(str)  # "render: 31 ms" after each job, for the status bar
    cancelled = Signal(str)  # "Cancelled: Invert" when a listed job was cancelled

    def __init__(self, runner: JobRunner, panel: JobsPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner, self.panel = runner, panel
        runner.job_added.connect(self._on_added)
        runner.job_started.connect(self._on_started)
        runner.job_progress.connect(self._on_progress)
        runner.job_finished.connect(self._on_done)
        runner.job_failed.connect(self._on_done)
        runner.job_cancelled.connect(self._on_done)
        panel.cancel_requested.connect(runner.cancel)

    def _on_added(self, job_id: int) -> None:
        job = self.runner.job(job_id)
        if job is not None and job.listed:
            self.panel.add_job(job_id, job.description)

    def _on_started(self, job_id: int) -> None:
        self.panel.set_running(job_id)

    def _on_progress(self, job_id: int, fraction: float, message: str, _preview: object) -> None:
        self.panel.set_progress(job_id, fraction, message)

    def _on_done(self, job_id: int, *_args: object) -> None:
        job = self.runner.job(job_id)
        if job is None:
            return
        seconds = job.seconds
        done = job.state == JobState.DONE
        if job.listed:
            if done:
                text = f"done in {seconds:.1f} s" if seconds is not None else "done"
            else:
                text = job.message or job.state.value
            self.panel.set_done(job_id, job.state.value, text)
            if job.state == JobState.CANCELLED:
                why = f" ({job.cancel_reason})" if job.cancel_reason else ""
                self.cancelled.emit(f"Cancelled: {job.description}{why}")
        if done and seconds is not None:
            took = f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"
            self.timing.emit(f"{job.kind}: {took}")
