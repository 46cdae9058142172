"""Pretrained-weight loading that never touches the network.

Policy (docs/decisions.md, `model.weights`):
- `imagenet`: the pinned torchvision ImageNet file of the backbone (`IMAGENET_URLS`) is *required*
  in torch's hub cache (`torch.hub.get_dir()/checkpoints/<file>`); when it is missing the job stops
  with one line naming the file, the folder and `python -m salience weights fetch` (the paper
  configs; `models/fetch.py` downloads and verifies the files).
- `auto`: that file when present, else random init with a log warning (the demo);
- a path: that state dict; `none`: random init.
The origin is stored on the backbone (`weights_origin`: "random", "imagenet:<file>" or
"file:<name>") and recorded in run.json, runs.csv, the MLflow tags and every table caption.
Loading is `weights_only=True` (safeload.read).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from salience.errors import CheckpointError, ConfigError
from salience.models.catalogue import IMAGENET_URLS, no_imagenet_file
from salience.safeload import read

log = logging.getLogger(__name__)

FETCH_COMMAND = "python -m salience weights fetch"


def hub_dir() -> Path:
    """torch's hub cache folder for weight files ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_checkpoint(filename: str) -> Path:
    """Where `model.weights: imagenet|auto` looks for `filename`."""
    return hub_dir() / filename


def _missing_imagenet(name: str, path: Path) -> ConfigError:
    stem = path.name.split("-")[0]
    others = (
        sorted(p.name for p in path.parent.glob(f"{stem}-*.pth")) if path.parent.is_dir() else []
    )
    found = f" (it holds {', '.join(others)}: not the pinned file)" if others else ""
    if name not in IMAGENET_URLS:
        # Gaze-GNN's Pyramid ViG file is published without a sha256 in its name, so `weights
        # fetch` cannot verify it and does not download it (docs/cluster.md §1).
        return ConfigError(
            f"model.weights: imagenet: {path.name} for {name} is not in {path.parent}{found}; "
            f"download it from the Vision GNN release (docs/cluster.md §1, not in `{FETCH_COMMAND}`) "
            f"into that folder (or set TORCH_HOME to where it is)"
        )
    return ConfigError(
        f"model.weights: imagenet: {path.name} for {name} is not in {path.parent}{found}; "
        f"fetch it with `{FETCH_COMMAND} --backbones {name}` (or set TORCH_HOME to where it is)"
    )


def load_weights(
    net: nn.Module,
    name: str,
    weights: str,
    imagenet_file: str | None,
    remap=None,
) -> None:
    """Load weights into `net` per the policy above and set `net.weights_origin`.

    Errors: ConfigError (imagenet file missing, imagenet for a backbone without one, path missing),
    CheckpointError (unreadable, unsafe or foreign file); each one line.
    """
    path = _weights_file(name, weights, imagenet_file)
    if path is None:
        net.weights_origin = "random"
        return
    state = read(path, fix="use a torchvision .pth file")
    if not isinstance(state, dict):  # e.g. a pickled tensor or list: remap would crash unclearly
        raise CheckpointError(
            f"{path}: holds a {type(state).__name__}, not a state dict; use a torchvision .pth file"
        )
    if remap is not None:
        state = remap(state)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except (
        RuntimeError
    ) as exc:  # strict=False still raises on shape mismatches (another model's file)
        raise CheckpointError(
            f"{path}: does not fit backbone {name} ({str(exc).splitlines()[-1].strip()})"
        ) from None
    if missing:
        raise CheckpointError(
            f"{path}: {len(missing)} backbone tensors missing (e.g. {missing[0]}); is it the weights file for {name}?"
        )
    log.info(
        "backbone %s: loaded pretrained weights from %s (%d unused keys)",
        name,
        path,
        len(unexpected),
    )
    # an explicit path counts as ImageNet only under the pinned file name (captions, docs/decisions.md)
    kind = "imagenet" if imagenet_file and path.name == imagenet_file else "file"
    net.weights_origin = f"{kind}:{path.name}"


def _weights_file(name: str, weights: str, imagenet_file: str | None) -> Path | None:
    """The file `model.weights` names for backbone `name`, or None for random init (`none`, or
    `auto` without the pinned file, with a warning)."""
    if weights in ("none", None):
        return None
    if weights == "imagenet":
        if not imagenet_file:
            raise no_imagenet_file(name)
        path = hub_checkpoint(imagenet_file)
        if not path.is_file():
            raise _missing_imagenet(name, path)
        return path
    if weights == "auto":
        path = hub_checkpoint(imagenet_file) if imagenet_file else None
        if path is None or not path.is_file():
            where = f" (looked for {path})" if path else ""
            log.warning(
                "backbone %s: no pretrained weights found%s; using RANDOM INIT "
                "(fetch it: `%s --backbones %s`; model.weights: imagenet makes this an error)",
                name,
                where,
                FETCH_COMMAND,
                name,
            )
            return None
        return path
    path = Path(os.path.expanduser(weights))
    if not path.is_file():
        raise ConfigError(
            f"model.weights: file {path} does not exist; give a state-dict path, 'imagenet', 'auto' or 'none'"
        )
    return path
