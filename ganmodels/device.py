"""Device choice: CUDA, then Apple MPS, then CPU; overridable by argument or GAN_EDITOR_DEVICE."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import torch

ENV_VAR = "GAN_EDITOR_DEVICE"

# Python's per-module import locks do not make torch's lazily imported compiler stack (torch._dynamo,
# torch._inductor) safe to import from two threads at once: one of them gets a deadlock error or a half-initialised
# module, and torch stays broken for the rest of the process (every later optimiser fails). Imports are process-wide,
# so is this lock.
_LAZY_IMPORT_LOCK = threading.RLock()


@contextlib.contextmanager
def lazy_torch_imports() -> Iterator[None]:
    """Hold while running torch code that may import torch._dynamo / torch._inductor for the first time on a thread
    that runs beside another such thread (building the first optimiser, loading a compiled package)."""
    with _LAZY_IMPORT_LOCK:
        yield


def choose_device(preferred: str | None = None, *, env: dict[str, str] | None = None) -> torch.device:
    """The device to run on: ``preferred`` if given, else $GAN_EDITOR_DEVICE, else the best available.

    Raises ValueError with a clear message when the requested device does not exist on this machine.
    """
    env = os.environ if env is None else env
    name = preferred or env.get(ENV_VAR) or "auto"
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"CUDA device {device.index} does not exist ({torch.cuda.device_count()} available)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was requested but is not available on this machine")
    return device


def describe(device: torch.device) -> str:
    """Human-readable device name for status bars."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 / AMX); else bf16 is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and _cpu_flag("avx512_bf16", "amx_bf16")
    except (AttributeError, RuntimeError):
        return False


def training_precision(name: str, device: torch.device) -> str:
    """Resolve a ``--precision`` choice: "auto" is bf16 autocast on a CPU with native bf16, else fp32."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def _cpu_flag(*flags: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    return any(f" {flag}" in text for flag in flags)
