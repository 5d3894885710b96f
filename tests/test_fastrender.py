"""The compiled slider renderer: eager until compiled, the same pixels after, failures keep it eager."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from conftest import TINY_G, tiny_generator

from ganmodels.fastrender import CompileState, FastSynthesis, SubprocessBuilder, package_key


def traced_builder(G, config, threads):
    """A cheap stand-in for the AOTInductor build (the real one is tested below): the same maths, a new callable."""
    synthesis = G.synthesis

    def compiled(ws: torch.Tensor) -> torch.Tensor:
        return synthesis(ws, noise_mode="const")

    return compiled


def sample_ws(G, seed: int) -> torch.Tensor:
    return G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed)), None)


def test_background_compile_switches_to_the_compiled_path_with_the_same_pixels():
    G = tiny_generator()[0].requires_grad_(False)
    fs = FastSynthesis(G, TINY_G, builder=traced_builder)
    ws = sample_ws(G, 3)
    before = fs(ws)
    assert not fs.compiled and fs.state == CompileState.EAGER
    thread = fs.start_background()
    assert fs.start_background() is thread  # only once
    thread.join(timeout=120)
    assert fs.state == CompileState.READY, fs.status
    after = fs(ws)
    assert after.shape == (1, 3, G.img_resolution, G.img_resolution)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert fs(ws.repeat(2, 1, 1)).shape[0] == 2  # other batch sizes take the eager path


def test_renders_during_compilation_stay_eager_and_correct():
    G = tiny_generator()[0].requires_grad_(False)
    gate = threading.Event()

    def slow_builder(G, config, threads):
        gate.wait(10)
        return traced_builder(G, config, threads)

    fs = FastSynthesis(G, TINY_G, builder=slow_builder)
    ws = sample_ws(G, 4)
    expected = G.synthesis(ws, noise_mode="const")
    thread = fs.start_background()
    outs = [fs(ws) for _ in range(3)]
    assert fs.state == CompileState.COMPILING and not fs.compiled
    gate.set()
    thread.join(timeout=120)
    assert fs.compiled
    for out in [*outs, fs(ws)]:
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_a_failing_compiler_leaves_the_renderer_eager():
    G = tiny_generator()[0].requires_grad_(False)

    def broken(G, config, threads):
        raise RuntimeError("no C++ compiler found")

    fs = FastSynthesis(G, TINY_G, builder=broken)
    assert fs.compile() is False
    assert fs.state == CompileState.FAILED and "no C++ compiler" in fs.status
    ws = sample_ws(G, 5)
    torch.testing.assert_close(fs(ws), G.synthesis(ws, noise_mode="const"))


def test_a_compiled_path_that_disagrees_is_refused():
    G = tiny_generator()[0].requires_grad_(False)
    fs = FastSynthesis(G, TINY_G, builder=lambda G, c, t: lambda ws: G.synthesis(ws, noise_mode="const") + 0.5)
    assert fs.compile() is False
    assert fs.state == CompileState.FAILED and "differs" in fs.status
    assert not fs.compiled


def test_package_key_follows_weights_and_threads():
    G = tiny_generator()[0]
    k1 = package_key(G, TINY_G, threads=1)
    assert k1 == package_key(G, TINY_G, threads=1)
    assert k1 != package_key(G, TINY_G, threads=2)
    with torch.no_grad():
        G.synthesis.b4.conv1.weight[0, 0, 0, 0] += 1e-3
    assert k1 != package_key(G, TINY_G, threads=1)


@pytest.mark.slow
def test_aot_compiled_package_matches_eager_and_is_cached(tmp_path):
    """The real build: a child process exports and compiles; a second build loads the cached package."""
    G = tiny_generator()[0].requires_grad_(False)
    build = SubprocessBuilder(tmp_path)
    fs = FastSynthesis(G, TINY_G, builder=build)
    assert fs.compile(threads=1), fs.status
    (package,) = tmp_path.glob("synthesis-*.pt2")
    ws = sample_ws(G, 6)
    torch.testing.assert_close(fs(ws), G.synthesis(ws, noise_mode="const"), atol=1e-4, rtol=0)
    mtime = package.stat().st_mtime_ns
    again = FastSynthesis(G, TINY_G, builder=build)
    assert again.compile(threads=1)
    assert package.stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert again.compile_seconds < 10


def test_registry_compiles_models_registered_after_enable_compile(qapp):
    from editor.jobs import ModelRegistry

    reg = ModelRegistry()
    G = tiny_generator()[0].requires_grad_(False)

    class M:
        pass

    m = M()
    m.G, m.config = G, TINY_G
    reg.set("plain", m)
    assert reg.renderer("plain").state == CompileState.EAGER
    reg.enable_compile(threads=1, builder=lambda: traced_builder)
    reg.set("fast", m)
    thread = reg.renderer("fast")._thread
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=120)
    assert reg.renderer("fast").compiled and not reg.compiling()
    reg.remove("fast")
    with pytest.raises(ValueError, match="no model"):
        reg.renderer("fast")


def test_cancel_kills_the_compiler_process(tmp_path):
    G = tiny_generator()[0].requires_grad_(False)
    build = SubprocessBuilder(tmp_path)
    fs = FastSynthesis(G, TINY_G, builder=build)
    thread = fs.start_background(threads=1)
    deadline = time.monotonic() + 30
    while not build._procs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert build._procs, "the child process should have started"
    (proc,) = build._procs
    fs.cancel()
    thread.join(timeout=30)
    assert not thread.is_alive() and proc.poll() is not None
    assert fs.state == CompileState.FAILED and not fs.compiled and fs.status == "compilation cancelled"
    assert not list(tmp_path.glob("*.pt2"))


RACE = r"""
import sys, threading, torch
from editor.jobs import warm_up
from ganmodels.fastrender import load_package

start = threading.Barrier(2)
errors = []

def worker():  # the job runner's start
    start.wait()
    warm_up()

def compiler():  # the renderer's thread loading a cached package (here a missing one: the imports come first)
    start.wait()
    try:
        load_package(sys.argv[1])
    except BaseException as e:
        errors.append(e)

threads = [threading.Thread(target=worker), threading.Thread(target=compiler)]
for t in threads:
    t.start()
for t in threads:
    t.join()
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # fails for good after a broken import
from torch._inductor.utils import IndentedBuffer  # noqa: F401
print(type(errors[0]).__name__ if errors else "no error")
"""


def test_loading_a_package_beside_the_worker_warm_up_leaves_torch_importable(tmp_path):
    """torch._dynamo / torch._inductor imported by two threads at once broke torch for the whole process (3 of 5
    runs before ``lazy_torch_imports``): the app's second start, with the package cached, lost every inversion."""
    import os
    import subprocess
    import sys

    missing = tmp_path / "missing.pt2"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(missing)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() not in ("no error", ""), out
        assert "Import" not in out and "Deadlock" not in out, out  # the loader's own error about the missing file
