"""A compiled single-image renderer for interactive use (latent sliders).

``FastSynthesis`` renders ws [1, num_ws, w_dim] eagerly until an ahead-of-time compiled copy of the synthesis
network is ready, then switches to it (about 2x faster on CPU at batch 1). Compiling takes a minute, so
``start_background`` does it on a daemon thread that runs ``python -m ganmodels.fastrender`` in a subprocess
(``torch.export`` + AOTInductor): the GUI process never traces or compiles (tracing in-process holds the GIL
for hundreds of milliseconds), it only loads the finished package. Packages are cached by a hash of the
weights, the torch version and the thread count, so the next start with the same model loads in milliseconds.

The compiled path is checked against an eager render before use; any failure (no C++ compiler, a GPU device,
a mismatch) leaves the renderer eager with the reason in ``status``. Nothing here imports Qt.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganmodels.device import lazy_torch_imports
from ganmodels.networks import hash_state

log = logging.getLogger(__name__)

Builder = Callable[[Any, Any, int], Callable[[torch.Tensor], torch.Tensor]]  # (G, config, threads) -> fn(ws)
PACKAGE_VERSION = 1  # bump when the export changes


class CompileState(enum.Enum):
    EAGER = "eager"  # compilation not requested
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"


class CompileCancelled(RuntimeError):
    """The build was stopped by ``cancel`` (the app quits, the model is closed): not a failure to report."""


def default_cache_dir() -> Path:
    """Where compiled renderers are kept: $XDG_CACHE_HOME (or ~/.cache)/gan-editor/renderers."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gan-editor" / "renderers"


def package_key(G: Any, config: Any, *, threads: int, noise_mode: str = "const") -> str:
    """A name for the compiled package of these weights on this torch build."""
    h = hashlib.sha256()
    h.update(json.dumps([PACKAGE_VERSION, torch.__version__, threads, noise_mode, config.to_dict()]).encode())
    hash_state(h, G.synthesis.state_dict())
    return h.hexdigest()[:32]


class _Synthesis(torch.nn.Module):
    def __init__(self, synthesis: torch.nn.Module, noise_mode: str) -> None:
        super().__init__()
        self.synthesis = synthesis
        self.noise_mode = noise_mode

    def forward(self, ws: torch.Tensor) -> torch.Tensor:  # [1, num_ws, w_dim] -> [1, 3, R, R]
        return self.synthesis(ws, noise_mode=self.noise_mode)


def export_package(G: Any, path: str | Path, *, threads: int = 1, noise_mode: str = "const") -> Path:
    """torch.export + AOTInductor-compile G's batch-1 synthesis into a ``.pt2`` package (blocking, ~1 min)."""
    torch.set_num_threads(threads)  # the generated CPU kernels keep the thread count they were built with
    path = Path(path)
    module = _Synthesis(G.synthesis, noise_mode).eval()
    ws = torch.zeros([1, G.num_ws, G.w_dim])
    with torch.no_grad():
        program = torch.export.export(module, (ws,), strict=False)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.pt2")
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    os.replace(tmp, path)
    return path


def load_package(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """Load a compiled ``.pt2`` package (its loader's lazy torch imports under ``lazy_torch_imports``)."""
    with lazy_torch_imports():
        from torch._inductor.package import load_package as aoti_load

        return aoti_load(str(path))


class SubprocessBuilder:
    """Compiles in a child process (cached by ``package_key``) and loads the package here; ``cancel`` kills the
    child (e.g. when the app quits or the model is closed mid-build)."""

    def __init__(self, cache_dir: str | Path | None = None, *, timeout: float = 1800) -> None:
        self.folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout = timeout
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def __call__(self, G: Any, config: Any, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
        from ganmodels.modelfile import save_model

        if next(G.parameters()).device.type != "cpu":
            raise RuntimeError("the compiled renderer is CPU-only; GPU renders stay eager")
        self.folder.mkdir(parents=True, exist_ok=True)
        package = self.folder / f"synthesis-{package_key(G, config, threads=threads)}.pt2"
        if not package.exists():
            with tempfile.TemporaryDirectory() as tmp:
                model_file = save_model(Path(tmp) / "model.safetensors", G, config=config)
                cmd = [sys.executable, "-m", "ganmodels.fastrender", str(model_file), str(package)]
                cmd += ["--threads", str(threads)]
                with self._lock:
                    if self._cancelled:
                        raise CompileCancelled("cancelled")
                    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    self._procs.add(proc)
                try:
                    out, err = proc.communicate(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
                finally:
                    with self._lock:
                        self._procs.discard(proc)
            if self._cancelled:
                raise CompileCancelled("cancelled")
            if proc.returncode != 0 or not package.exists():
                tail = (err or out).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"compiler process failed ({proc.returncode}): {tail[0][:200]}")
        return load_package(package)

    def cancel(self) -> None:
        """Stop running and future builds."""
        with self._lock:
            self._cancelled = True
            procs = list(self._procs)
        for proc in procs:
            proc.kill()


class FastSynthesis:
    """Batch-1 renders of one generator, compiled in the background when asked.

    Thread-safe: ``__call__`` may run on one thread while ``compile`` runs on another.
    """

    def __init__(self, G: Any, config: Any = None, *, noise_mode: str = "const", builder: Builder | None = None):
        self.G = G
        self.config = config
        self.noise_mode = noise_mode
        self.builder = builder
        self._lock = threading.Lock()
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.state = CompileState.EAGER
        self.status = "not compiled"
        self.compile_seconds = 0.0
        self._thread: threading.Thread | None = None

    def __call__(self, ws: torch.Tensor, *, noise_mode: str | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, 3, R, R] (compiled only for N = 1 and this renderer's noise mode)."""
        compiled = self._compiled
        with torch.no_grad():
            if compiled is not None and ws.shape[0] == 1 and noise_mode in (None, self.noise_mode):
                return compiled(ws.contiguous())
            return self.G.synthesis(ws, noise_mode=noise_mode or self.noise_mode)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def compile(self, *, threads: int = 1, atol: float = 1e-3) -> bool:
        """Build (or load from the cache) and check the compiled path now, blocking. True when it is in use."""
        with self._lock:
            if self.state in (CompileState.COMPILING, CompileState.READY):
                return self.state == CompileState.READY
            self.state = CompileState.COMPILING
            self.status = "compiling"
        t0 = time.perf_counter()
        try:
            builder = self.builder
            if builder is None:
                builder = self.builder = SubprocessBuilder()
            fn = builder(self.G, self.config, threads)
            G = self.G
            gen = torch.Generator().manual_seed(0)
            z = torch.randn([1, G.z_dim], generator=gen)
            with torch.no_grad():
                ws = G.mapping(z, torch.zeros([1, G.c_dim]))  # [1, num_ws, w_dim]
                err = (fn(ws).float() - G.synthesis(ws, noise_mode=self.noise_mode).float()).abs().max().item()
            if not err <= atol:  # also catches NaN
                raise RuntimeError(f"compiled output differs from eager by {err:.2e}")
        except Exception as e:  # any failure keeps the eager path
            cancelled = isinstance(e, CompileCancelled)
            if cancelled:
                log.info("renderer compilation cancelled")
            else:
                log.warning("renderer compilation failed: %s", e)
            with self._lock:
                self.state = CompileState.FAILED
                status = "compilation cancelled" if cancelled else f"compilation failed: {type(e).__name__}: {e}"
                self.status = status.splitlines()[0][:240]
            return False
        with self._lock:
            self._compiled = fn
            self.compile_seconds = time.perf_counter() - t0
            self.state = CompileState.READY
            self.status = f"compiled in {self.compile_seconds:.0f} s (max diff {err:.1e})"
        return True

    def cancel(self) -> None:
        """Abandon a build under way (its thread ends soon; the renderer stays eager)."""
        cancel = getattr(self.builder, "cancel", None)
        if cancel is not None:
            cancel()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background build (if any) to end."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def start_background(self, **kw: Any) -> threading.Thread:
        """``compile(**kw)`` on a daemon thread; returns the thread (join it to wait)."""
        with self._lock:
            if self._thread is not None:
                return self._thread
            self._thread = threading.Thread(target=self.compile, kwargs=kw, name="gan-render-compile", daemon=True)
        self._thread.start()
        return self._thread


def main(argv: list[str] | None = None) -> int:
    """Child process: compile a model file's synthesis network into a package."""
    ap = argparse.ArgumentParser(prog="python -m ganmodels.fastrender", description=main.__doc__)
    ap.add_argument("model")
    ap.add_argument("package")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--noise-mode", default="const")
    args = ap.parse_args(argv)
    from ganmodels.modelfile import load_model

    model = load_model(args.model)
    export_package(model.G.eval().requires_grad_(False), args.package, threads=args.threads, noise_mode=args.noise_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
