"""A run's resumable state: the network being trained (`Trainable`), the progress and best epoch so
far (`TrainState`), and the atomic `checkpoint.pt` written after every epoch that holds both.

A rerun of the same command continues from `checkpoint.pt` and ends with exactly the metrics of an
uninterrupted run; the file is untrusted on read (weights_only, salience/safeload.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from salience import checkpoint as ckpt
from salience.errors import CheckpointError
from salience.safeload import read

CHECKPOINT_VERSION = 1


@dataclass
class Trainable:
    """The model with its optimiser and learning-rate schedule (StepLR)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any  # torch.optim.lr_scheduler.StepLR

    def state_dicts(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
        }

    def load_state_dicts(self, obj: dict[str, Any]) -> None:
        self.model.load_state_dict(obj["model"])
        self.opt.load_state_dict(obj["opt"])
        self.sched.load_state_dict(obj["sched"])


@dataclass
class TrainState:
    """Epochs done, the selected (best) epoch and its weights, the per-epoch history rows and the
    MLflow run id; the checkpoint keys of the same names."""

    epoch: int = 0
    best: float | None = None
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run: str | None = None

    def keep_best(self, value: float, mode: str, model: torch.nn.Module, epoch: int) -> None:
        """Keep `model`'s weights when `value` of epoch `epoch` (1-based) is the best so far.
        Strict improvement: the earliest epoch wins ties (CYBORG's `>=` let the latest win);
        `mode` "last" keeps every epoch in turn."""
        better = (
            self.best is None
            or mode == "last"
            or (value > self.best if mode == "max" else value < self.best)
        )
        if better:
            self.best = value
            self.best_epoch = epoch
            self.best_state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})

    def selected_row(self) -> dict[str, Any]:
        """The history row of the selected epoch ({} before any epoch)."""
        return self.history[self.best_epoch - 1] if self.best_epoch > 0 else {}


_STATE_KEYS = tuple(f.name for f in fields(TrainState))


def save_checkpoint(path: Path, state: TrainState, fingerprint: str, net: Trainable) -> None:
    """Atomically write everything needed to resume after the epoch `state.epoch`."""
    obj = {"version": CHECKPOINT_VERSION, "fingerprint": fingerprint}
    obj.update({k: getattr(state, k) for k in _STATE_KEYS})
    obj.update(net.state_dicts())
    ckpt.save(obj, path)


def resume(path: Path, fingerprint: str, net: Trainable) -> TrainState:
    """State of an interrupted attempt, with `net` restored. The file is untrusted (weights_only;
    code is refused); a foreign, outdated or other-configuration file is a one-line CheckpointError."""
    restart = "delete it to restart the run"
    # a torn write cannot happen (atomic), but a foreign file can
    obj = read(path, fix=restart)
    keys = (*_STATE_KEYS, "model", "opt", "sched")
    if (
        not isinstance(obj, dict)
        or obj.get("version") != CHECKPOINT_VERSION
        or any(k not in obj for k in keys)
    ):
        raise CheckpointError(
            f"{path}: not a resumable checkpoint of this salience version; {restart}"
        )
    if obj.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: checkpoint belongs to a different configuration of this run; {restart}"
        )
    try:
        net.load_state_dicts(obj)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: checkpoint does not fit this run's model ({first}); {restart}"
        ) from None
    return TrainState(**{k: obj[k] for k in _STATE_KEYS})
