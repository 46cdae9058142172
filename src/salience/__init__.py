"""salience: reproducible human-saliency-guided training (CYBORG, Divisive Decisions, SAGE and baselines).

Importing the package hooks the torchvision import shim (see `_tvshim`) so that every entry point
(`python -m salience`, Snakemake rules, DVC stages, tests) can import torchvision on CPU-only torch;
the hook imports torch only when torchvision is imported, so `salience.config` stays torch-free.
"""

from salience import _tvshim

_tvshim.hook()

__all__ = ["__version__"]
__version__ = "0.1.0"
