"""One tiny generated + prepared dataset shared by the reliability tests (test_robustness,
test_faults, test_degenerate) within a pytest session: generating and preparing it through the CLI
costs ~10 s of CPU, paid once. Tests must treat it as read-only (copy before changing anything)."""

from __future__ import annotations

from pathlib import Path

from _support import prepare_tiny, tiny_config

_CACHE: dict[str, Path] = {}


def shared_tiny_root(tmp_path_factory) -> Path:
    """Folder holding data/raw/tiny and data/prepared/tiny (the `tiny_config` dataset)."""
    if "root" not in _CACHE:
        root = tmp_path_factory.mktemp("shared-tiny")
        prepare_tiny(tiny_config(root))
        _CACHE["root"] = root
    return _CACHE["root"]
