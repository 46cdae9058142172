"""Pretrained-weight loading that never touches the network.

Policy (toolchain.md "Pretrained weights"): `weights: auto` loads the torchvision ImageNet file when
it is already in torch's hub cache (`torch.hub.get_dir()/checkpoints/<file>`), else random init
with a clear log line; a path loads that state dict; `none` is random init. The origin is stored on
the backbone (`weights_origin`) and recorded as an MLflow tag. Loading is `weights_only=True`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from salience.errors import CheckpointError, ConfigError
from salience.safeload import read

log = logging.getLogger(__name__)


def hub_checkpoint(filename: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_weights(
    net: nn.Module,
    name: str,
    weights: str,
    imagenet_file: str | None,
    remap=None,
) -> None:
    """Load weights into `net` per the policy above and set `net.weights_origin`."""
    if weights in ("none", None):
        net.weights_origin = "random"
        return
    if weights == "auto":
        path = hub_checkpoint(imagenet_file) if imagenet_file else None
        if path is None or not path.is_file():
            where = f" (looked for {path})" if path else ""
            log.warning(
                "backbone %s: no pretrained weights found%s; using RANDOM INIT "
                "(put the torchvision ImageNet file there or set model.weights to a path)",
                name,
                where,
            )
            net.weights_origin = "random"
            return
    else:
        path = Path(os.path.expanduser(weights))
        if not path.is_file():
            raise ConfigError(
                f"model.weights: file {path} does not exist; give a state-dict path, 'auto' or 'none'"
            )
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
    net.weights_origin = f"imagenet:{path.name}"
