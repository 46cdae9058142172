"""`python -m salience doctor`: what this machine will do with a run, and whether it is reproducible."""

from __future__ import annotations

import importlib.metadata as md
import platform

import torch

from salience import _tvshim


def report(cfg: dict | None = None) -> list[str]:
    from salience import config as C

    lines = [f"python        {platform.python_version()} ({platform.machine()})"]
    for pkg in (
        "torch",
        "torchvision",
        "numpy",
        "pandas",
        "scikit-learn",
        "mlflow",
        "snakemake",
        "dvc",
    ):
        try:
            lines.append(f"{pkg:<13} {md.version(pkg)}")
        except md.PackageNotFoundError:
            lines.append(f"{pkg:<13} not installed")
    cuda = torch.cuda.is_available()
    lines.append(
        f"device        {'cuda: ' + torch.cuda.get_device_name(0) if cuda else 'cpu only'} ({torch.get_num_threads()} CPU threads)"
    )
    lines.append(
        f"tv shim       {_tvshim.STATE} (torchvision C extension {'loaded' if _tvshim.STATE == 'extension-loaded' else 'not loaded; operator schemas defined'})"
    )
    cfg = cfg or {"results_dir": "results", "tracking_uri": None}
    from salience.tracking import redact_uri

    uri = C.tracking_uri(cfg)
    note = (
        "  (credentials in the URI: use MLFLOW_TRACKING_USERNAME/PASSWORD)"
        if uri != redact_uri(uri)
        else ""
    )
    lines.append(f"tracking uri  {redact_uri(uri)}{note}")
    if cuda:
        det = "yes, if CUBLAS_WORKSPACE_CONFIG is set (salience sets :4096:8) and train.deterministic is true; bf16/autocast may still differ across GPUs"
    else:
        det = "yes: CPU kernels are deterministic and every run is seeded (same seed → identical metrics)"
    lines.append(f"deterministic {det}")
    return lines
