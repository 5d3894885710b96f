"""A restricted unpickler for NVIDIA's network pickles (stylegan2-ada-pytorch, stylegan3).

Those pickles store every network through ``torch_utils.persistence``: the reduce of each module calls
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` holds the module's full Python source
(``module_src``), its class name and its ``__dict__`` (``state``). Loading them with ``pickle.load`` executes that
source. Here the reconstruct function is replaced by a stub that keeps ``class_name`` and ``state`` as plain data
(:class:`PersistentObject`) and never looks at the source; every other global a pickle may name is refused unless it
is on a short allow-list of data constructors (tensors, storages through ``torch.load(weights_only=True)``, numpy
scalars and arrays, ``OrderedDict``, ``EasyDict``, ``set``). A refused global raises
:class:`UnsafeCheckpointError` before anything it names is called.
"""

from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganmodels.modelfile import ModelFileError


class UnsafeCheckpointError(ModelFileError):
    """A checkpoint that would need to run code (or build objects) beyond plain network weights to load."""


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict, nothing more."""


@dataclasses.dataclass
class PersistentObject:
    """A module from an NVIDIA pickle, as data: its class name and ``__dict__`` (``_parameters``, ``_buffers``,
    ``_modules``, ``_init_kwargs`` and plain attributes). ``module_src`` is never kept or run."""

    class_name: str
    state: dict[str, Any]
    version: int | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.state.get("_parameters") or {})

    @property
    def buffers(self) -> dict[str, Any]:
        return dict(self.state.get("_buffers") or {})

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    def child(self, name: str) -> PersistentObject | None:
        m = self.modules.get(name)
        return m if isinstance(m, PersistentObject) else None

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this module tree, under torch's dotted names."""
        out: dict[str, torch.Tensor] = {}
        non_persistent = set(self.state.get("_non_persistent_buffers_set") or ())
        for k, v in self.parameters.items():
            if v is not None:
                out[prefix + k] = v.detach()
        for k, v in self.buffers.items():
            if v is not None and k not in non_persistent:
                out[prefix + k] = v.detach()
        for k, m in self.modules.items():
            if isinstance(m, PersistentObject):
                out.update(m.state_dict(f"{prefix}{k}."))
            elif m is not None:
                raise ModelFileError(f"module {prefix}{k} is not stored as a persistent NVIDIA class")
        return out


def _reconstruct_persistent_stub(meta: Any) -> PersistentObject:
    """Replaces ``torch_utils.persistence._reconstruct_persistent_obj``: keeps the state, ignores ``module_src``."""
    if not isinstance(meta, dict):
        raise ModelFileError("persistent object metadata is not a dict")
    if meta.get("type") != "class":
        raise ModelFileError(f"unsupported persistent object type {meta.get('type')!r}")
    class_name = meta.get("class_name")
    state = meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise ModelFileError("persistent object without class_name or state")
    return PersistentObject(class_name=class_name, state=dict(state), version=meta.get("version"))


def _load_storage_from_bytes(b: bytes) -> Any:
    """Replaces ``torch.storage._load_from_bytes``: the bytes are a torch.save'd storage, read with weights_only."""
    if not isinstance(b, (bytes, bytearray)):
        raise ModelFileError("tensor storage is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
        try:
            return torch.load(io.BytesIO(bytes(b)), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(f"a tensor storage in the pickle is not plain data: {e}") from None


def _no_hooks(hooks: Any) -> None:
    if hooks:
        raise UnsafeCheckpointError("refused to load: a tensor in the pickle carries backward hooks")


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple) -> torch.Tensor:
    return torch._utils._rebuild_tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any, offset: int, size: tuple, stride: tuple, requires_grad: bool, backward_hooks: Any, metadata=None
) -> torch.Tensor:
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, {}, metadata)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any) -> torch.nn.Parameter:
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, collections.OrderedDict())


def _rebuild_parameter_with_state(
    data: torch.Tensor, requires_grad: bool, backward_hooks: Any, state: Any
) -> torch.nn.Parameter:
    """Parameters with extra Python attributes: the attributes are dropped, never set."""
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, collections.OrderedDict())


def _latin1_encode(s: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles to store bytes; only text-to-bytes is allowed."""
    if not isinstance(s, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("_codecs.encode is allowed only for latin1 text in protocol-2 byte strings")
    return s.encode("latin1")


def _numpy_multiarray(name: str) -> Any:
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_stub,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_multiarray("scalar"),
    ("numpy.core.multiarray", "_reconstruct"): _numpy_multiarray("_reconstruct"),
    ("numpy._core.multiarray", "scalar"): _numpy_multiarray("scalar"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_multiarray("_reconstruct"),
}

_HINTS = {
    "dnnlib.tflib.network": "this is a TensorFlow StyleGAN/StyleGAN2 pickle; convert it to a PyTorch pickle "
    "with NVIDIA's stylegan2-ada-pytorch legacy.py first",
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS` and raises UnsafeCheckpointError for anything else."""

    def __init__(self, file: Any, *, source: str = "checkpoint") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names used by protocol < 3 pickles (``__builtin__.set``), as pickle's own find_class maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        fn = ALLOWED_GLOBALS.get((module, name))
        if fn is not None:
            return fn
        hint = next((h for prefix, h in _HINTS.items() if module.startswith(prefix)), None)
        raise UnsafeCheckpointError(
            f"{self.source}: refused to load: the pickle asks for {module}.{name}, which is not part of a network's "
            "weights and could run arbitrary code. Nothing from the file was executed." + (f" ({hint})" if hint else "")
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"{self.source}: refused to load: unexpected persistent id in a plain pickle")


def load_pickle(path: str | Path) -> Any:
    """Unpickle an NVIDIA network pickle with :class:`RestrictedUnpickler`; modules come back as PersistentObject."""
    path = Path(path)
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return RestrictedUnpickler(f, source=path.name).load()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except ModelFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ModelFileError(f"{path.name} is not a readable network pickle ({type(e).__name__}: {e})") from None
    except RuntimeError as e:
        raise ModelFileError(f"{path.name}: damaged tensor data ({e})") from None
