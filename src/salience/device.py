"""Device selection (`train.device`): one definition for training, evaluation and RQ1 scoring."""

from __future__ import annotations

import torch

from salience.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """`cpu`, `cuda` (ConfigError when no CUDA device is available) or `auto` (CUDA when present)."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
            )
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
