"""Training methods: one small module per method, registered by name in `METHODS`.

Every module in this package is imported by `import_all()`, so adding a method is adding a file.
Importing this package does not import torch: the configuration layer reads the torch-free
`salience.methods.catalogue` and `salience.methods.settings`; the names below are loaded from
`salience.methods.base` on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["METHODS", "LossOutput", "Method", "build_method", "import_all", "method_class"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("salience.methods.base"), name)
    raise AttributeError(f"module 'salience.methods' has no attribute {name!r}")
