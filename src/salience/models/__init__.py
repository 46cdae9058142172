"""Backbones (a registry) and the classifier wrapper that exposes features/head/CAMs.

Importing this package does not import torch: the configuration layer reads the torch-free
`salience.models.catalogue` (backbone names, ImageNet files); the names below are loaded from
`salience.models.base` on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BACKBONES", "Backbone", "Classifier", "ModelOutput", "build_backbone"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("salience.models.base"), name)
    raise AttributeError(f"module 'salience.models' has no attribute {name!r}")
