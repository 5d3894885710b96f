"""Pivotal-tuning (PTI) weights of GAN layers. No Qt.

A layer inverted with pivotal tuning renders with its own tuned copy of the synthesis network. Its ``GanState``
names the weights by key (``pti_weights``); the document keeps them under that key (``Document.pti_weights``) and
saves them with the project, and the editor registers a tuned copy of the model under the same key with the job
runner's model registry, so renders of that layer use it while every other layer keeps the base model.

The weights are rounded to float16 when they are made, so storing them as float16 safetensors and reading them back
renders bit-identical pixels. Nothing here unpickles: safetensors holds raw tensors and strings only.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import uuid
from collections.abc import Mapping
from types import MappingProxyType

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ganmodels.inversion import tuned_copy
from ganmodels.modelfile import GanModel

PTI_FORMAT = "gan-editor-pti/1"  # the metadata ``format`` (also written by ``ganmodels invert --pti``)
STORAGE_DTYPE = torch.float16


@dataclasses.dataclass(frozen=True, eq=False)
class PtiWeights:
    """Tuned synthesis weights of the model named ``model_name``: ``synthesis.<name>`` -> float16 CPU tensor."""

    model_name: str
    weights: Mapping[str, torch.Tensor]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    @classmethod
    def from_tuned(cls, model_name: str, weights: Mapping[str, torch.Tensor]) -> PtiWeights:
        """Round freshly tuned weights (any dtype and device) to what is kept and saved."""
        return cls(model_name, {k: v.detach().to("cpu", STORAGE_DTYPE).contiguous() for k, v in weights.items()})


def new_pti_key(model_key: str) -> str:
    """A registry key for new tuned weights of the model registered as ``model_key``."""
    return f"{model_key}#pti-{uuid.uuid4().hex[:12]}"


def tuned_model(base: GanModel, pti: PtiWeights) -> GanModel:
    """A copy of ``base`` whose generator uses the tuned synthesis weights; ``base`` is untouched.

    Raises ValueError if the weights do not fit the model."""
    try:
        G = tuned_copy(base.G, dict(pti.weights))
    except RuntimeError as e:  # a shape mismatch
        raise ValueError(f"the tuned weights do not fit the model {base.name!r}: {e}") from e
    return dataclasses.replace(base, G=G)


def pti_to_bytes(pti: PtiWeights) -> bytes:
    """A safetensors file holding the weights, with ``format`` and ``model`` metadata."""
    return save_safetensors(dict(pti.weights), metadata={"format": PTI_FORMAT, "model": pti.model_name})


def pti_from_bytes(data: bytes) -> PtiWeights:
    """Read ``pti_to_bytes`` output (ValueError if it is damaged or holds anything but synthesis weights)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        weights = load_safetensors(data)
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, AttributeError, SafetensorError) as e:
        raise ValueError(f"damaged tuned weights: {e}") from e
    if meta.get("format") != PTI_FORMAT:
        raise ValueError(f"not tuned weights (format {meta.get('format')!r})")
    bad = [k for k, v in weights.items() if not k.startswith("synthesis.") or not v.is_floating_point()]
    if bad or not weights:
        raise ValueError(f"unexpected tensors in tuned weights: {bad[:3]}")
    return PtiWeights(str(meta.get("model", "")), {k: v.to(STORAGE_DTYPE) for k, v in weights.items()})
