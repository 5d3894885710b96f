"""Write our own networks in foreign checkpoint layouts: test fixtures and minimal files for bug reports.

:func:`write_nvidia_pickle` produces the structure of an NVIDIA network pickle without any NVIDIA code: every
``nn.Module`` is reduced to ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}``, ``state`` being the module's ``__dict__``, and the
top level is a dict of G, D, G_ema, augment_pipe and training_set_kwargs (an ``EasyDict``). ``module_src`` is a
placeholder: the importer must never run it. :func:`rosinality_checkpoint` gives the dict rosinality's
stylegan2-pytorch saves (``g_ema``, ``latent_avg``, ``args``), or e4e / pSp's (``state_dict`` with ``decoder.*``).
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganmodels.networks import Generator, GeneratorConfig

PLACEHOLDER_SRC = "# placeholder module source: an importer must never execute this\n"


@contextlib.contextmanager
def _nvidia_names() -> Iterator[tuple[Callable, type]]:
    """Temporarily register stand-ins named ``torch_utils.persistence._reconstruct_persistent_obj`` and
    ``dnnlib.util.EasyDict`` so pickle can write references to them."""
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    clash = [n for n in names if n in sys.modules]
    if clash:
        raise RuntimeError(f"cannot write a fixture while real modules {clash} are imported")

    def _reconstruct_persistent_obj(meta: Any) -> Any:  # never called: only its name is written
        raise RuntimeError("placeholder")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = EasyDict
    mods = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }
    sys.modules.update(mods)
    try:
        yield _reconstruct_persistent_obj, EasyDict
    finally:
        for n in names:
            sys.modules.pop(n, None)


class _PersistencePickler(pickle.Pickler):
    def __init__(
        self,
        file: Any,
        *,
        reconstruct: Callable,
        easydict: type,
        module_src: str,
        init_kwargs: dict[int, dict],
        state_hook: Callable[[nn.Module, dict], None] | None,
        protocol: int,
    ) -> None:
        super().__init__(file, protocol=protocol)
        self.reconstruct = reconstruct
        self.easydict = easydict
        self.module_src = module_src
        self.init_kwargs = init_kwargs
        self.state_hook = state_hook

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, nn.Module):
            return NotImplemented
        state = dict(obj.__dict__)
        state["_init_args"] = ()
        state["_init_kwargs"] = self.easydict(self.init_kwargs.get(id(obj), {}))
        if self.state_hook is not None:
            self.state_hook(obj, state)
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=type(obj).__name__, state=state)
        return self.reconstruct, (meta,)


def write_nvidia_pickle(
    path: str | Path,
    G: nn.Module,
    *,
    D: nn.Module | None = None,
    init_kwargs: dict[str, Any] | None = None,
    training_set_kwargs: dict[str, Any] | None = None,
    module_src: str = PLACEHOLDER_SRC,
    state_hook: Callable[[nn.Module, dict], None] | None = None,
    extra: dict[str, Any] | None = None,
    protocol: int = 4,
) -> Path:
    """Pickle {G, D, G_ema, augment_pipe, training_set_kwargs} the way NVIDIA's training loop does.

    ``init_kwargs`` become G's ``_init_kwargs``; ``state_hook(module, state)`` may edit each module's state
    before it is written (to drop or falsify attributes in tests); ``extra`` adds top-level entries.
    """
    path = Path(path)
    with _nvidia_names() as (reconstruct, easydict):
        data: dict[str, Any] = {
            "G": G,
            "D": D,
            "G_ema": G,
            "augment_pipe": None,
            "training_set_kwargs": easydict(training_set_kwargs) if training_set_kwargs is not None else None,
        }
        data.update(extra or {})
        kwargs = {id(G): _to_easydict(init_kwargs or {}, easydict)}
        with open(path, "wb") as f:
            _PersistencePickler(
                f,
                reconstruct=reconstruct,
                easydict=easydict,
                module_src=module_src,
                init_kwargs=kwargs,
                state_hook=state_hook,
                protocol=protocol,
            ).dump(data)
    return path


def _to_easydict(d: dict[str, Any], easydict: type) -> Any:
    return easydict({k: _to_easydict(v, easydict) if isinstance(v, dict) else v for k, v in d.items()})


def rosinality_checkpoint(
    G: Generator, config: GeneratorConfig, *, latent_avg: bool = True, e4e: bool = False
) -> dict[str, Any]:
    """The dict rosinality's train.py / convert_weight.py save (or e4e / pSp's, with ``decoder.*`` keys)."""
    from ganmodels.importers.rosinality import from_ours

    w_avg = G.mapping.w_avg.detach().clone()
    if e4e:
        ckpt: dict[str, Any] = {
            "state_dict": from_ours(G, config, prefix="decoder."),
            "opts": {"stylegan_size": config.img_resolution},
        }
        ckpt["state_dict"]["encoder.input_layer.0.weight"] = torch.zeros(4, 3, 3, 3)
        if latent_avg:
            ckpt["latent_avg"] = w_avg.repeat(G.num_ws, 1)  # e4e stores it per ws
        return ckpt
    ckpt = {
        "g_ema": from_ours(G, config),
        "args": argparse.Namespace(size=config.img_resolution, latent=config.w_dim, n_mlp=config.mapping_layers),
    }
    if latent_avg:
        ckpt["latent_avg"] = w_avg
    return ckpt
