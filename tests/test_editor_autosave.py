"""Autosave and crash recovery (including a real SIGKILL of a child editor), and closing while a job runs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from qt_helpers import slow_steps, window_factory

from editor.autosave import FORMAT, Autosaver, RecoveryChoice, find_recoverable, process_alive
from editor.document import Document, make_raster_layer
from editor.fileio import read_image
from editor.jobs import JobState
from editor.project import load_project, save_project
from editor.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
W, H = 20, 16


@pytest.fixture
def make_window(qtbot, tmp_path):
    settings = Settings.at_path(tmp_path / "settings.ini")  # the windows' settings: autosaves into tmp_path/recovery
    settings.autosave_interval = 0.2
    settings.sync()
    yield from window_factory(qtbot, tmp_path)


@pytest.fixture
def doc(qapp):
    d = Document(W, H)
    d.reset_to(W, H, [make_raster_layer(W, H, name="Background", fill=(1.0, 1.0, 1.0, 1.0))])
    return d


def known_pixels(seed: int) -> np.ndarray:
    """RGBA float32 [H, W, 4] on the 8-bit grid, so the 8-bit PNG layers of an .ora keep them exactly."""
    return np.random.default_rng(seed).integers(0, 256, [H, W, 4]).astype(np.float32) / 255


def known_mask() -> np.ndarray:
    mask = np.zeros([H, W], np.float32)
    mask[3:9, 4:15] = 0.75
    return mask


def dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    r = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(r.stdout)


def crashed_autosave(folder: Path, pid: int, *, saved_at: float, original: Path | None, name: str) -> Path:
    """What a crashed session leaves: an autosaved project with one layer ``name`` and its sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"autosave-{pid}-{name.encode().hex()}"
    layer = make_raster_layer(W, H, name=name, pixels=known_pixels(len(name)))
    save_project(folder / f"{stem}.ora", W, H, [layer], model_path=None)
    info = folder / f"{stem}.json"
    info.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "document": f"{stem}.ora",
                "original_path": str(original) if original else None,
                "saved_at": saved_at,
                "pid": pid,
            }
        )
    )
    return info


# --------------------------------------------------------------------------------------------------------------
# Autosaver


def test_autosave_writes_a_change_not_a_clean_document(qtbot, doc, tmp_path):
    folder = tmp_path / "recovery"
    saver = Autosaver(doc, folder, interval=0.1)
    qtbot.wait(300)
    assert not folder.exists()  # nothing unsaved, nothing written
    doc.path = tmp_path / "picture.png"
    layer = make_raster_layer(W, H, name="paint", pixels=known_pixels(1))
    doc.add_layer(layer)
    doc.set_mask(layer.id, known_mask())
    assert not saver.exists  # written by the timer, not at every edit
    t0 = time.perf_counter()
    qtbot.waitUntil(lambda: saver.exists, timeout=3000)
    assert time.perf_counter() - t0 < 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([saver.document_path.name, saver.info_path.name])
    info = json.loads(saver.info_path.read_text())
    assert info["format"] == FORMAT and info["document"] == saver.document_path.name
    assert info["pid"] == os.getpid() and info["original_path"] == str(tmp_path / "picture.png")
    assert abs(info["saved_at"] - time.time()) < 30
    project = load_project(saver.document_path)
    assert (project.width, project.height, project.warnings) == (W, H, [])
    layers = project.layers
    assert [la.name for la in layers] == ["Background", "paint"]
    np.testing.assert_array_equal(layers[0].pixels, doc.layers[0].pixels)
    np.testing.assert_array_equal(layers[1].pixels, layer.pixels)
    np.testing.assert_array_equal(layers[1].mask, known_mask())

    saved_at = info["saved_at"]
    doc.delete_layer(layer.id)  # a later change is autosaved too
    qtbot.waitUntil(lambda: json.loads(saver.info_path.read_text())["saved_at"] > saved_at, timeout=3000)
    assert [la.name for la in load_project(saver.document_path).layers] == ["Background"]


def test_an_autosave_during_a_slider_drag_keeps_the_layer_as_recorded(make_window, tiny_model_file):
    """A crash right after an autosave taken mid-drag recovered the preview's pixels with the latent from before
    the drag (the sliders said 0, the picture said otherwise, and the next touch made it jump)."""
    window = make_window(model=tiny_model_file)
    window.editor.new_document(16, 16)
    window.editor.generate(3, 0.7)
    layer = window.doc.active_layer
    recorded = layer.pixels
    slider = window.latent_panel.sliders["first"].slider
    slider.setSliderDown(True)  # the drag is under way: frames are shown, nothing is recorded yet
    slider.setValue(slider.value() + 40)
    assert not np.array_equal(window.doc.layer(layer.id).pixels, recorded)
    assert window.autosave.save_now()
    saved = load_project(window.autosave.document_path).layers[-1]
    assert saved.gan.strengths == {}
    np.testing.assert_allclose(saved.pixels, recorded, atol=1 / 255)  # (8-bit PNG)
    slider.setSliderDown(False)  # released: recorded, and the next autosave has it
    assert window.doc.layer(layer.id).gan.strengths == {"first": pytest.approx(0.4)}
    assert window.autosave.save_now()
    saved = load_project(window.autosave.document_path).layers[-1]
    assert saved.gan.strengths == {"first": pytest.approx(0.4)}
    np.testing.assert_allclose(saved.pixels, window.doc.layer(layer.id).pixels, atol=1 / 255)
    assert not np.allclose(saved.pixels, recorded, atol=1 / 255)


def test_autosave_is_removed_when_the_document_is_clean_again(qtbot, doc, tmp_path):
    saver = Autosaver(doc, tmp_path / "recovery", interval=0.05)
    stack = doc.undo_stack

    def change_and_wait() -> None:
        doc.add_layer(make_raster_layer(W, H, pixels=known_pixels(2)))
        qtbot.waitUntil(lambda: saver.exists, timeout=3000)

    change_and_wait()
    stack.setClean()  # what a successful Save does
    assert not saver.exists and not saver.document_path.exists()
    change_and_wait()
    stack.undo()  # back to the saved state
    assert not saver.exists and not saver.document_path.exists()
    change_and_wait()
    doc.reset_to(W, H, [])  # File > New / Open
    assert not saver.exists
    change_and_wait()
    saver.close()  # a clean exit
    assert list((tmp_path / "recovery").iterdir()) == []
    doc.add_layer(make_raster_layer(W, H))
    qtbot.wait(200)
    assert not saver.exists  # closed: no more autosaves


def test_find_recoverable_lists_only_sessions_that_are_gone(qtbot, doc, tmp_path):
    folder = tmp_path / "recovery"
    own = Autosaver(doc, folder, interval=0.05)
    doc.add_layer(make_raster_layer(W, H))
    qtbot.waitUntil(lambda: own.exists, timeout=3000)
    gone = dead_pid()
    assert process_alive(os.getpid()) and not process_alive(gone)
    old = crashed_autosave(folder, gone, saved_at=1000.0, original=None, name="old")
    new = crashed_autosave(folder, gone, saved_at=2000.0, original=tmp_path / "a.png", name="newer")
    damaged = folder / f"autosave-{gone}-dead.json"
    damaged.write_text("{not json")
    orphan = folder / f"autosave-{gone}-0bad.ora"  # a crash before its first sidecar was written
    orphan.write_bytes(b"partial")
    half_written = folder / f"autosave-{gone}-0bad.ora.tmp"
    half_written.write_bytes(b"partial")
    live_tmp = folder / f"autosave-{os.getpid()}-0abc.ora.tmp"  # a live session's write in progress
    live_tmp.write_bytes(b"partial")

    found = find_recoverable(folder)
    assert [r.info for r in found] == [new, old]  # newest first; not this (running) process's own autosave
    assert found[0].original_path == tmp_path / "a.png" and found[1].original_path is None
    assert found[0].pid == gone and found[0].saved_at == 2000.0 and found[0].document.is_file()
    assert not orphan.exists() and not half_written.exists()  # leftovers of the dead process are cleaned up
    assert damaged.exists() and live_tmp.exists() and own.exists  # the rest is left alone
    found[1].remove()
    assert not old.exists() and not found[1].document.exists()
    assert find_recoverable(tmp_path / "no-such-folder") == []


# --------------------------------------------------------------------------------------------------------------
# The main window


def test_window_offers_recovery_discard_later_recover(make_window, tmp_path):
    folder = tmp_path / "recovery"
    gone = dead_pid()
    older = crashed_autosave(folder, gone, saved_at=1000.0, original=tmp_path / "sky.png", name="sky")
    newer = crashed_autosave(folder, gone, saved_at=2000.0, original=None, name="sea")
    window = make_window()
    layer_ids = [la.id for la in window.doc.layers]

    asked = []
    assert not window.offer_recovery(lambda rec: asked.append(rec.info) or RecoveryChoice.LATER)
    assert asked == [newer] and older.exists() and newer.exists()  # kept for the next start
    assert [la.id for la in window.doc.layers] == layer_ids and window.doc.undo_stack.isClean()

    answers = {newer: RecoveryChoice.DISCARD, older: RecoveryChoice.RECOVER}
    asked.clear()
    assert window.offer_recovery(lambda rec: asked.append(rec.info) or answers[rec.info])
    assert asked == [newer, older]
    assert not newer.exists()  # discarded
    assert [la.name for la in window.doc.layers] == ["sky"]
    np.testing.assert_array_equal(window.doc.layers[0].pixels, known_pixels(len("sky")))
    assert window.doc.path == tmp_path / "sky.png"  # Save proposes the original name
    assert not window.doc.undo_stack.isClean() and window.isWindowModified() and "sky.png" in window.windowTitle()
    assert not older.exists()  # taken over: now this session's autosave
    assert window.autosave.exists and find_recoverable(folder) == []

    assert window.editor.save_project(tmp_path / "sky.ora")  # a successful save leaves nothing to recover
    assert list(folder.iterdir()) == []
    assert not window.offer_recovery(lambda rec: pytest.fail("nothing should be offered"))


def test_closing_the_window_removes_its_autosave(qtbot, make_window, tmp_path):
    window = make_window()
    window.doc.add_layer(make_raster_layer(*window.doc.size))
    qtbot.waitUntil(lambda: window.autosave.exists, timeout=3000)
    assert window.close()
    assert not window.autosave.exists and list((tmp_path / "recovery").iterdir()) == []


CRASHING_EDITOR = """
import os, sys, time
from pathlib import Path
import numpy as np
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
app = QApplication([])
from editor.document import make_raster_layer
from editor.jobs import JobRunner
from editor.mainwindow import MainWindow
from editor.settings import Settings
tmp = Path(sys.argv[1])
window = MainWindow(settings=Settings.at_path(tmp / "settings.ini"), runner=JobRunner(sync=True))
assert window.open_image(tmp / "picture.png")
w, h = window.doc.size
pixels = np.random.default_rng(7).integers(0, 256, [h, w, 4]).astype(np.float32) / 255
layer = make_raster_layer(w, h, name="painted", pixels=pixels)
window.doc.add_layer(layer)
mask = np.zeros([h, w], np.float32)
mask[3:9, 4:15] = 0.75
window.doc.set_mask(layer.id, mask)
deadline = time.monotonic() + 30
loop = QEventLoop()  # (not app.processEvents: in PySide6 6.12 each call drops a reference to None)
while not window.autosave.exists and time.monotonic() < deadline:
    loop.processEvents()
    time.sleep(0.01)
print("AUTOSAVED" if window.autosave.exists else "NOT SAVED", os.getpid(), flush=True)
app.exec()  # until killed
"""


def _child(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_recovery_after_the_editor_is_killed(make_window, tmp_path):
    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, [H, W, 3]).astype(np.uint8)).save(picture)
    proc = _child(CRASHING_EDITOR, str(tmp_path))
    try:
        line = _first_line(proc, timeout=60)
        assert line.startswith("AUTOSAVED"), line + (proc.stderr.read() if proc.poll() is not None else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(list((tmp_path / "recovery").glob(f"autosave-{proc.pid}-*.json"))) == 1

    window = make_window()
    offered = []
    assert window.offer_recovery(lambda rec: offered.append(rec) or RecoveryChoice.RECOVER)
    assert [(r.pid, r.original_path) for r in offered] == [(proc.pid, picture)]
    doc = window.doc
    assert [la.name for la in doc.layers] == ["picture", "painted"] and doc.size == (W, H)
    np.testing.assert_array_equal(doc.layers[0].pixels, read_image(picture))
    np.testing.assert_array_equal(doc.layers[1].pixels, known_pixels(7))
    np.testing.assert_array_equal(doc.layers[1].mask, known_mask())
    assert doc.path == picture and not doc.undo_stack.isClean() and window.isWindowModified()
    assert list((tmp_path / "recovery").glob(f"autosave-{proc.pid}-*")) == []  # the crashed session's files
    assert window.autosave.exists


# --------------------------------------------------------------------------------------------------------------
# Closing while a job runs


def test_closing_the_window_stops_a_running_job(qtbot, tmp_path):
    from editor.mainwindow import MainWindow

    window = MainWindow(settings=Settings.at_path(tmp_path / "settings.ini"))  # with its own threaded runner
    qtbot.addWidget(window)
    window.ask_before_discarding = False
    runner = window.runner
    thread = runner._thread
    assert thread is not None and thread.isRunning()
    results = []
    with qtbot.waitSignal(runner.job_progress, timeout=15000):
        job = window.editor.run_backend_job("invert", lambda: slow_steps(steps=100_000, delay=0.01), results.append)
    assert job.state == JobState.RUNNING
    with qtbot.captureExceptions() as exceptions:
        t0 = time.perf_counter()
        assert window.close()
        elapsed = time.perf_counter() - t0
        qtbot.waitUntil(lambda: not job.active, timeout=2000)
    assert elapsed < 2, f"closing took {elapsed:.2f} s"
    assert not runner.running and thread.isFinished() and not thread.isRunning()
    assert job.state == JobState.CANCELLED and results == [] and not window.worker_stuck
    assert exceptions == []


CLOSING_EDITOR = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from editor.mainwindow import MainWindow
from editor.settings import Settings
window = MainWindow(settings=Settings.at_path(Path(sys.argv[1]) / "settings.ini"))
window.ask_before_discarding = False
window.show()

def forever():
    while True:
        time.sleep(0.01)
        yield 0

def close_and_quit():
    print("CLOSING", window.runner.active_count, flush=True)
    window.close()
    app.quit()

window.runner.job_progress.connect(lambda *_: QTimer.singleShot(0, close_and_quit))
window.editor.run_backend_job("invert", forever, print)
code = app.exec()
print("EXITED", code, window.runner.running, flush=True)
sys.exit(code)
"""


def test_quitting_while_a_job_runs_exits_with_code_0(tmp_path):
    proc = _child(CLOSING_EDITOR, str(tmp_path))
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "CLOSING 1" in out and "EXITED 0 False" in out  # it quit with the job running, and the worker stopped
    assert "QThread: Destroyed" not in err  # (Qt aborts the process when a running QThread is destroyed)


def test_a_recovered_foreign_ora_is_still_not_overwritten_by_save(qtbot, doc, tmp_path):
    from editor.autosave import read_recovery_info

    folder = tmp_path / "recovery"
    # as EditorController.open_project opens another program's file
    doc.reset_to(W, H, [make_raster_layer(W, H)], path=tmp_path / "krita.ora", keep_file=True)
    saver = Autosaver(doc, folder, interval=0.05)
    doc.add_layer(make_raster_layer(W, H))
    qtbot.waitUntil(lambda: saver.exists, timeout=3000)
    rec = read_recovery_info(saver.info_path)
    assert rec.keep_file and rec.original_path == tmp_path / "krita.ora"
    other = Document(W, H)
    Autosaver(other, tmp_path / "recovery2", interval=60).adopt(rec)
    assert other.path == tmp_path / "krita.ora" and other.keep_file
