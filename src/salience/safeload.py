"""The one loader for untrusted tensor files (checkpoints, resume state, backbone weights):
`torch.load(weights_only=True)`, every failure a one-line CheckpointError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from salience.errors import CheckpointError


def read(path: str | os.PathLike, fix: str = "delete it and retrain") -> Any:
    """`torch.load(weights_only=True)` of an untrusted file; every failure is one CheckpointError line.

    A file whose pickle names any global outside torch's weights-only allow-list (i.e. one that
    would run code on load) is refused without being executed; a torn, truncated or foreign file is
    reported with torch's reason (first sentence) and `fix`.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the file's fault
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise CheckpointError(
                f"{path}: refused: the file contains Python objects that could run code on load; "
                f"only weights-only checkpoints written by salience are accepted"
            ) from None
        raise CheckpointError(
            f"{path}: unreadable or truncated checkpoint ({_reason(exc, path)}); {fix}"
        ) from None


def _reason(exc: Exception, path: Path) -> str:
    """The first sentence of torch's (often multi-line, advice-laden) error."""
    if path.is_file() and path.stat().st_size == 0:
        return "empty file"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0].split(". ")[0].rstrip(".")
