"""Latent files (``.npz``): ws, optional noise maps and where they came from. Read without pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_latent(
    path: str | Path,
    ws: torch.Tensor,
    *,
    noise: dict[str, torch.Tensor] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """ws [1, num_ws, w_dim] (+ noise maps name -> [r, r]) and a JSON ``info`` dict (model, psnr, ...)."""
    path = Path(path)
    arrays = {"ws": ws.detach().float().cpu().numpy()}
    for name, v in (noise or {}).items():
        arrays[f"noise/{name}"] = v.detach().float().cpu().numpy()
    arrays["info"] = np.array(json.dumps(info or {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_latent(path: str | Path) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None, dict[str, Any]]:
    """-> (ws [1, num_ws, w_dim], noise maps or None, info)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            ws = torch.from_numpy(f["ws"]).float()
            noise = {k[len("noise/") :]: torch.from_numpy(f[k]).float() for k in f.files if k.startswith("noise/")}
            info = json.loads(str(f["info"])) if "info" in f.files else {}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a latent file") from None
    except (OSError, ValueError, KeyError) as e:
        why = "it holds no ws array" if isinstance(e, KeyError) else "not a .npz written by 'ganmodels invert'"
        raise ValueError(f"{path.name} is not a latent file ({why})") from None
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3:
        raise ValueError(f"{path.name}: ws must be [1, num_ws, w_dim], got {list(ws.shape)}")
    return ws, (noise or None), info
