"""Make `import torchvision` work on CPU-only torch.

The registry's torchvision 0.28.0 wheel is a CUDA build: its compiled extension cannot load against
CPU torch, and `torchvision/_meta_registrations.py` then fails with
`RuntimeError: operator torchvision::nms does not exist` (docs/decisions.md, "torchvision on CPU").
`hook()` (run when the package is imported) puts a finder on `sys.meta_path` that calls `install()`
right before the first `import torchvision`, so importing `salience` itself never imports torch (the
configuration layer stays torch-free: docs/decisions.md, "torch-free configuration layer"). At that
first import we try to load the real extension; only when that fails with
OSError do we define the two operator schemas the meta registrations expect. On a CUDA machine the
extension loads and this shim does nothing. `torchvision.io` and `torchvision.ops` stay unusable
on CPU; the package uses PIL and plain torch instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys

# "not-needed" | "extension-loaded" | "schemas-defined" | "torchvision-missing"
STATE = "not-needed"
_LIBRARY = None  # keep the torch.library.Library alive: dropping it unregisters the schemas


def install() -> str:
    """Idempotently prepare torchvision's import; returns the shim state (also in STATE)."""
    global STATE, _LIBRARY
    if "torchvision" in sys.modules or _LIBRARY is not None or STATE != "not-needed":
        return STATE
    _unhook()  # find_spec below must not re-enter install() through the hook
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        STATE = "torchvision-missing"
        return STATE
    import torch

    pkg_dir = list(spec.submodule_search_locations)[0]
    so = next(
        (
            os.path.join(pkg_dir, f)
            for f in sorted(os.listdir(pkg_dir))
            if f.startswith("_C") and f.endswith(".so")
        ),
        None,
    )
    try:
        if so is None:
            raise OSError("torchvision/_C.so not found")
        torch.ops.load_library(so)
        STATE = "extension-loaded"
    except OSError:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBRARY = lib
        STATE = "schemas-defined"
    return STATE


class _Finder:
    """A `sys.meta_path` finder that runs `install()` before torchvision's first import, then steps
    aside (it never finds a module itself, so the normal finders import torchvision)."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if name == "torchvision":
            _unhook()
            install()
        return None


def hook() -> None:
    """Idempotently arrange for `install()` to run before the first `import torchvision`."""
    if "torchvision" in sys.modules:
        install()
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def _unhook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
