"""Checkpoints: atomic writes, `weights_only=True` loads, self-describing model files.

`model.pt` (the selected weights) is {"state_dict": ..., "meta": {...}} with plain types only, so it
loads with `torch.load(weights_only=True)`: a file crafted to run code on load is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from salience.errors import CheckpointError
from salience.io import atomic_path


def save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint safely; every failure is a one-line CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train the run first (python -m salience train ...)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: the file contains Python objects that could run code on load; "
                f"only weights-only checkpoints written by salience are accepted"
            ) from None
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({first}); delete it and retrain") from None
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a salience checkpoint (no 'state_dict'); use a model.pt written by `salience train`")
    return obj


def load_model_state(model: torch.nn.Module, ckpt: dict[str, Any], path: str | os.PathLike, expect: dict[str, Any]) -> None:
    """Load `ckpt['state_dict']` into `model` after checking that its meta matches `expect`."""
    meta = ckpt.get("meta", {})
    for key, want in expect.items():
        if key in meta and meta[key] != want:
            raise CheckpointError(
                f"{path}: checkpoint was trained with {key} {meta[key]!r}, not {want!r}; "
                f"evaluate it with --{key.replace('_', '-')} {meta[key]}"
            )
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit this model ({first}); is it from another backbone/method?") from None
