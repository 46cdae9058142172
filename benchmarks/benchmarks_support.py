"""Shared set-up for the benchmarks: a generated + prepared dataset in a scratch folder."""

from __future__ import annotations

from pathlib import Path

import salience  # noqa: F401 - torchvision shim
from salience.data.generate import generate
from salience.data.prepare import prepare


def make_prepared(tmp: Path, n: int, image_size: int, task: str = "chest") -> Path:
    """Generate `task` with about `n` test images at `image_size` px and prepare it; returns the folder."""
    manifest = generate(
        task, tmp / "raw", seed=0, image_size=image_size, n_train=8, n_val=8, n_test=n
    )
    return prepare(manifest, tmp / "prepared", image_size=image_size)
