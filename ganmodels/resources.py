"""Paths of the files shipped in the ``resources`` package."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "fluent-emoji-64.safetensors"


def resources_dir() -> Path:
    """The installed ``resources`` folder."""
    import resources

    return Path(resources.__file__).resolve().parent


def default_model_path() -> Path:
    """The shipped default model (Fluent 3D emoji, 64 px)."""
    path = resources_dir() / "models" / DEFAULT_MODEL_NAME
    if not path.exists():
        raise FileNotFoundError(f"the default model is missing: {path}")
    return path
