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
from salience.safeload import read


def save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomic torch.save. A full disk or a file size limit raises the OSError itself (torch wraps
    it in an opaque RuntimeError "unexpected pos"), so the CLI can name the file and the fix."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            try:
                torch.save(obj, fh)
            except RuntimeError as exc:
                if isinstance(exc.__context__, OSError):
                    raise exc.__context__ from None
                raise
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        raise


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model checkpoint safely; every failure is a one-line CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint not found; train the run first (python -m salience train ...)"
        )
    obj = read(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError(
            f"{path}: not a salience checkpoint (no 'state_dict'); use a model.pt written by `salience train`"
        )
    if not isinstance(obj.get("meta", {}), dict):
        raise CheckpointError(
            f"{path}: not a salience checkpoint ('meta' is not a mapping); use a model.pt written by `salience train`"
        )
    return obj


def load_model_state(
    model: torch.nn.Module, ckpt: dict[str, Any], path: str | os.PathLike, expect: dict[str, Any]
) -> None:
    """Load `ckpt['state_dict']` into `model` after checking that its meta matches `expect`."""
    meta = ckpt.get("meta") or {}
    for key, want in expect.items():
        if key in meta and meta[key] != want:
            raise CheckpointError(
                f"{path}: checkpoint was trained with {key} {meta[key]!r}, not {want!r}; "
                f"evaluate it with --{key.replace('_', '-')} {meta[key]}"
            )
    state = ckpt["state_dict"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [
        k
        for k in own
        if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)
    ]
    if missing or unexpected or shape:
        example = (missing or unexpected or shape)[0]
        raise CheckpointError(
            f"{path}: weights do not fit this model ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shape)} wrong-shape tensors, e.g. {example!r}); is it from another backbone/method?"
        )
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit this model ({first}); is it from another backbone/method?"
        ) from None
