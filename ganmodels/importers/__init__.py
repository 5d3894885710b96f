"""Open the GAN checkpoints users already have, without running code from the file.

Formats, recognised by content (the file name's suffix is only a hint in messages):

- native ``.safetensors`` model files -> :func:`ganmodels.modelfile.load_model`
- NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles (``.pkl``): StyleGAN2 (orig / skip / resnet,
  conditional) and StyleGAN3 configs T and R, read by a restricted unpickler (:mod:`.safe_pickle`)
- rosinality stylegan2-pytorch checkpoints (``g_ema``, ``latent_avg``), e4e / pSp checkpoints (``state_dict`` with
  ``decoder.*``) and generators in the layout of the PyTorch DCGAN example (``main.N.*``), all read with
  ``torch.load(weights_only=True)`` allowing only ``argparse.Namespace`` beyond torch's own data types

Everything returns a :class:`~ganmodels.modelfile.GanModel` whose ``G`` offers ``z_dim, w_dim, c_dim, num_ws,
img_resolution, img_channels``, ``mapping(z, c, truncation_psi, truncation_cutoff)`` -> [N, num_ws, w_dim] with
``mapping.w_avg``, and ``synthesis(ws, noise_mode=...)`` -> [N, 3, R, R] in about [-1, 1].
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ganmodels.importers.common import Imported, estimate_w_avg, finish, load_weights
from ganmodels.importers.safe_pickle import UnsafeCheckpointError
from ganmodels.modelfile import GanModel, ModelFileError, load_model, save_model

__all__ = [
    "FILE_PATTERNS",
    "UnsafeCheckpointError",
    "convert",
    "detect_format",
    "import_checkpoint",
    "load_any",
    "safe_torch_load",
]

#: Name patterns for an "open model" dialog.
FILE_PATTERNS = ("*.safetensors", "*.pkl", "*.pt", "*.pth")

_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled int 0x1950a86a20f9469cfc6c (torch.save)


def detect_format(path: str | Path) -> str:
    """'safetensors', 'pickle' (NVIDIA) or 'torch' (torch.save, zip or legacy) from the first bytes of ``path``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e})") from None
    if len(head) >= 9 and head[8:9] == b"{":
        # safetensors: a little-endian u64 header length, then the JSON header. Tested first: the length's low
        # byte can be anything, including a pickle opcode (a 0x80 there made valid files look like pickles).
        header_len = int.from_bytes(head[:8], "little")
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if 2 <= header_len <= size - 8:
            return "safetensors"
    if head[:4] == b"PK\x03\x04":
        other = {".npz": "a NumPy .npz (a dataset or a latent file)", ".ora": "an OpenRaster project"}
        if path.suffix.lower() in other:
            raise ModelFileError(f"{path.name} is {other[path.suffix.lower()]}, not a model")
        return "torch"
    if head[:1] == b"\x80":
        return "torch" if head[2:14] == _TORCH_LEGACY_MAGIC else "pickle"
    if head[:1] and head[:1] in b"(}])cI":  # protocol 0/1 pickles start with a plain opcode
        return "pickle"
    if path.suffix.lower() in (".safetensors", ".pkl", ".pt", ".pth"):
        what = "empty" if not head else "damaged (or not a model at all): its first bytes fit no model format"
        raise ModelFileError(f"{path.name} is not a readable {path.suffix.lower()} model file: it is {what}")
    raise ModelFileError(
        f"{path.name}: unknown file type (expected a .safetensors model, an NVIDIA .pkl or a PyTorch .pt/.pth)"
    )


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` allowing only ``argparse.Namespace`` beyond torch's data types; a refused
    global raises UnsafeCheckpointError naming it."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = m.group(1) if m else "an object that is not plain data"
        raise UnsafeCheckpointError(
            f"{path.name}: refused to load: the checkpoint asks for {what}, which is not part of a network's weights "
            "and could run arbitrary code. Nothing from the file was executed."
        ) from None
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise ModelFileError(f"{path.name} is not a readable PyTorch checkpoint ({e})") from None


def _state_dict_of(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        return obj
    return None


def _import_torch(path: Path, *, device: torch.device | str) -> Imported:
    from ganmodels.importers import dcgan, rosinality

    source = path.name
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict):
        raise ModelFileError(f"{source}: a PyTorch checkpoint holding {type(ckpt).__name__}, not a dict of weights")
    notes: list[str] = []
    card: dict[str, Any] = {"name": path.stem, "source_file": source}
    latent_avg = ckpt.get("latent_avg")
    sd = prefix = None
    if isinstance(ckpt.get("g_ema"), dict) and rosinality.is_rosinality(ckpt["g_ema"]):
        sd, prefix, card["source_format"] = ckpt["g_ema"], "", "rosinality-stylegan2"
    elif isinstance(ckpt.get("state_dict"), dict) and rosinality.is_rosinality(ckpt["state_dict"], "decoder."):
        sd, prefix, card["source_format"] = ckpt["state_dict"], "decoder.", "e4e-psp-decoder"
        notes.append("only the StyleGAN decoder was imported; the e4e/pSp encoder is not used")
    elif rosinality.is_rosinality(ckpt):
        sd, prefix, card["source_format"] = ckpt, "", "rosinality-stylegan2"
    elif dcgan.is_dcgan(ckpt):
        config = dcgan.config_from_state_dict(ckpt, source=source)
        G = config.build()
        load_weights(G, dcgan.to_ours(ckpt), source=source)
        card["source_format"] = "pytorch-dcgan-example"
        model = GanModel(G=finish(G, device), config=config, card=card, path=path)
        return Imported(model=model, notes=notes)
    if sd is None:
        keys = sorted(map(str, ckpt))[:8]
        raise ModelFileError(
            f"{source}: not a checkpoint this app can read (keys {keys}); supported: rosinality stylegan2-pytorch "
            "(g_ema), e4e/pSp (state_dict with decoder.*), PyTorch DCGAN example generators (main.N.*)"
        )
    config = rosinality.config_from_state_dict(sd, prefix=prefix, source=source)
    G = config.build()
    ours, more = rosinality.to_ours(sd, config, G, prefix=prefix, source=source)
    notes += more
    if isinstance(latent_avg, torch.Tensor):
        w_avg = latent_avg.detach().float().reshape(-1, config.w_dim)[0]  # e4e stores it repeated per ws
    else:
        w_avg = None
        notes.append("the checkpoint stores no latent_avg; w_avg was estimated from 10000 random z")
    ours["mapping.w_avg"] = torch.zeros(config.w_dim) if w_avg is None else w_avg
    load_weights(G, ours, source=source)
    if w_avg is None:
        G.mapping.w_avg.copy_(estimate_w_avg(G.eval()))
        card["w_avg"] = "estimated from 10000 random z (seed 0)"
    model = GanModel(G=finish(G, device), config=config, card=card, path=path)
    return Imported(model=model, notes=notes)


def import_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Imported:
    """Like :func:`load_any`, also returning extra networks worth keeping on conversion and notes for the user."""
    path = Path(path)
    kind = detect_format(path)
    try:
        if kind == "safetensors":
            return Imported(model=load_model(path, device=device))
        if kind == "pickle":
            from ganmodels.importers.nvidia import import_pickle

            return import_pickle(path, device=device)
        return _import_torch(path, device=device)
    except (MemoryError, OverflowError):
        raise ModelFileError(
            f"{path.name} asks for more memory than this machine has: it is damaged or not a checkpoint"
        ) from None


def load_any(path: str | Path, *, device: torch.device | str = "cpu") -> GanModel:
    """Load any supported checkpoint as an eval-mode fp32 GanModel on ``device``; never runs code from the file.

    Raises UnsafeCheckpointError (a ModelFileError) for files that would need code to load, and ModelFileError
    with a readable message for anything else that cannot be loaded.
    """
    return import_checkpoint(path, device=device).model


def convert(in_path: str | Path, out_path: str | Path, *, dtype: torch.dtype | None = None) -> tuple[Path, list[str]]:
    """Write any supported checkpoint as a native model file; returns (path, notes for the user).

    The card records the source format and file; a StyleGAN2 discriminator found in an NVIDIA pickle is kept as
    the ``discriminator`` component (inversion uses it as a perceptual loss).
    """
    imported = import_checkpoint(in_path)
    m = imported.model
    card = dict(m.card)
    components = dict(imported.components)
    if m.path is not None and m.path.suffix == ".safetensors" and m.components:
        from ganmodels.modelfile import load_component

        components = {name: load_component(m.path, name) for name in m.components}
    out = save_model(
        out_path,
        m.G,
        config=m.config,
        card=card,
        directions=m.directions,
        components=components,
        dtype=dtype,
    )
    return out, list(imported.notes)
