"""Deterministic safetensors writer.

The safetensors library writes its metadata map in hash order, so saving the same model twice gives different
bytes. This writer emits the same format (8-byte little-endian header length, JSON header padded to 8 bytes,
raw little-endian tensor data) with sorted keys, so equal content gives equal files. Reading stays with
``safetensors.safe_open``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Write ``tensors`` and string ``metadata`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    header: dict[str, object] = {"__metadata__": {k: str(metadata[k]) for k in sorted(metadata)}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPES:
            raise TypeError(f"cannot store dtype {t.dtype} ({name})")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    tmp.replace(path)
    return path
