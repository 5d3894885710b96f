"""Extra networks stored in a model file: the discriminator (for perceptual losses) and the encoder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ganmodels.losses import DiscriminatorPerceptual
from ganmodels.modelfile import (
    Q8_STORAGE,
    GanModel,
    ModelFileError,
    generator_storage_dtype,
    load_component,
    save_model,
)
from ganmodels.networks import Discriminator, DiscriminatorConfig

DISCRIMINATOR_KIND = "stylegan2-discriminator"


def discriminator_component(D: Discriminator, config: DiscriminatorConfig) -> tuple[str, dict[str, Any], dict]:
    """(kind, config, state_dict) for ``save_model(components=...)``."""
    return DISCRIMINATOR_KIND, config.to_dict(), {k: v.detach().cpu() for k, v in D.state_dict().items()}


def load_discriminator(model: GanModel, *, device: torch.device | str = "cpu") -> Discriminator | None:
    """The model's discriminator, or None when the file has none."""
    if model.path is None or "discriminator" not in model.components:
        return None
    kind, cfg, sd = load_component(model.path, "discriminator")
    if kind != DISCRIMINATOR_KIND:
        raise ModelFileError(f"unknown discriminator kind {kind!r}")
    D = DiscriminatorConfig.from_dict(cfg).build()
    D.load_state_dict({k: v.float() for k, v in sd.items()})
    return D.eval().requires_grad_(False).to(device)


def load_perceptual(model: GanModel, *, device: torch.device | str = "cpu") -> DiscriminatorPerceptual | None:
    """A perceptual distance on the model's discriminator features, or None."""
    D = load_discriminator(model, device=device)
    return DiscriminatorPerceptual(D) if D is not None else None


def load_encoder(model: GanModel, *, device: torch.device | str = "cpu") -> Any:
    """The model's encoder (``ganmodels.encoder.Encoder``), or None."""
    from ganmodels.encoder import ENCODER_KIND, encoder_from_state

    if model.path is None or "encoder" not in model.components:
        return None
    kind, cfg, sd = load_component(model.path, "encoder")
    if kind != ENCODER_KIND:
        raise ModelFileError(f"unknown encoder kind {kind!r}")
    return encoder_from_state(cfg, {k: v.float() for k, v in sd.items()}).to(device)


def resave_with(
    model: GanModel,
    out: str | Path,
    *,
    add: dict[str, tuple[str, dict[str, Any], dict[str, torch.Tensor]]] | None = None,
    directions: dict | None = None,
    card: dict | None = None,
    dtype: torch.dtype | None = None,
    quantize: Iterable[str] = (),
) -> Path:
    """Write ``model`` to ``out`` keeping its components, adding / replacing ``add`` and optionally directions.

    ``dtype`` None keeps the precision the model's file stores its generator in (an fp16 file stays fp16, and what
    is added is stored in fp16 too). Kept components stay int8 when they were; ``quantize`` names added ones to store
    as int8 (see ``save_model``)."""
    if dtype is None and model.path is not None and Path(model.path).exists():
        dtype = generator_storage_dtype(model.path)
        dtype = None if dtype == torch.float32 else dtype
    comps: dict[str, tuple[str, dict[str, Any], dict[str, torch.Tensor]]] = {}
    quantized = set(quantize)
    if model.path is not None:
        for name, info in model.components.items():
            if not add or name not in add:
                comps[name] = load_component(model.path, name)
                if info.get("storage") == Q8_STORAGE:
                    quantized.add(name)
    comps.update(add or {})
    return save_model(
        out,
        model.G,
        config=model.config,
        card=card if card is not None else model.card,
        directions=directions if directions is not None else model.directions,
        components=comps,
        dtype=dtype,
        quantize=quantized,
    )


def load_inpainter(model: GanModel, *, device: torch.device | str = "cpu") -> Any:
    """The model's trained feed-forward inpainter network, or None."""
    from ganmodels.ganinpainter import INPAINTER_KIND, inpainter_from_state

    if model.path is None or "inpainter" not in model.components:
        return None
    kind, cfg, sd = load_component(model.path, "inpainter")
    if kind != INPAINTER_KIND:
        raise ModelFileError(
            f"this model's inpainter is of an unknown or retired kind ({kind!r}); retrain it with "
            "ganmodels train-inpainter --fresh"
        )
    try:
        return inpainter_from_state(cfg, {k: v.float() for k, v in sd.items()}).to(device)
    except (ValueError, RuntimeError, KeyError) as e:
        raise ModelFileError(f"the model's inpainter does not fit its own description: {e}") from e
