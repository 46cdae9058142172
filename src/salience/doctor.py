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
    _tvshim.install()  # report the state torchvision's import gets (the hook runs it lazily)
    lines.append(
        f"tv shim       {_tvshim.STATE} (torchvision C extension {'loaded' if _tvshim.STATE == 'extension-loaded' else 'not loaded; operator schemas defined'})"
    )
    cfg = cfg or {"results_dir": "results", "tracking_uri": None}
    from salience.tracking_store import redact_uri

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
    lines.append(f"weights       {_weights_line(cfg)}")
    return lines


def _weights_line(cfg: dict) -> str:
    """Which pinned ImageNet files the config's backbones need (all of them without a config) and
    which are in torch's hub cache: a paper job (`model.weights: imagenet`) stops without them."""
    from salience.models.catalogue import IMAGENET_URLS, imagenet_file
    from salience.models.weights import FETCH_COMMAND, hub_dir

    setting = f"model.weights {cfg['model']['weights']}" if "model" in cfg else "no config"
    grids = cfg.get("experiments", {}).values()
    names = sorted({b for g in grids for b in g["backbones"]}) if grids else list(IMAGENET_URLS)
    files = [f for f in map(imagenet_file, names) if f]
    if not files:
        return f"{setting}; no pinned ImageNet file needed ({', '.join(names)})"
    missing = [f for f in files if not (hub_dir() / f).is_file()]
    text = f"{setting}; {len(files) - len(missing)} of {len(files)} pinned ImageNet files in {hub_dir()}"
    return text + (f" (missing {', '.join(missing)}: `{FETCH_COMMAND}`)" if missing else "")
