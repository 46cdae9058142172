"""One training run (or one stage of a two-stage method): seeded, resumable, validated each epoch.

The recipe is `train`; its steps live beside it: set-up (setup.py), one epoch of fitting and
validation (epoch.py), the resumable state and `checkpoint.pt` (state.py), the run's files
(outputs.py).

- Model selection on the validation split only (never test): the method says which metric.
- After every epoch an atomic `checkpoint.pt` holds everything needed to resume; a rerun of the
  same command continues from it and ends with exactly the metrics of an uninterrupted run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from salience import config as C
from salience.training.epoch import fit_epoch, print_epoch, validate
from salience.training.outputs import write_outputs
from salience.training.setup import RunContext, set_up_run
from salience.training.state import TrainState, resume, save_checkpoint

log = logging.getLogger(__name__)


def train(cfg: dict, spec: C.RunSpec, stage: str = "train", tracker=None) -> Path:
    """Train one run/stage; returns the folder holding model.pt. Resumes from checkpoint.pt.

    Errors (one line each): ConfigError (stage, device, batch size), DataError (splits, folds),
    CheckpointError (a foreign or other-configuration checkpoint.pt), TrainingDiverged."""
    ctx = set_up_run(cfg, spec, stage)
    state = start_or_resume(ctx)
    if tracker is not None:
        start_tracking(ctx, state, tracker)
    for epoch in range(state.epoch, ctx.epochs):
        row = fit_epoch(ctx, epoch, first=epoch == state.epoch)
        row.update(validate(ctx, epoch))
        state.keep_best(row[ctx.sel_metric], ctx.sel_mode, ctx.net.model, epoch + 1)
        state.history.append(row)
        state.epoch = epoch + 1
        print_epoch(ctx, row)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        save_checkpoint(ctx.out / "checkpoint.pt", state, ctx.fingerprint, ctx.net)
    return write_outputs(ctx, state, tracker)


def start_or_resume(ctx: RunContext) -> TrainState:
    """A fresh state, or that of an interrupted attempt (its checkpoint.pt) with the network
    restored. Creates the run folder: only now, so a refused run leaves no folder behind."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    path = ctx.out / "checkpoint.pt"
    if not path.exists():
        return TrainState()
    state = resume(path, ctx.fingerprint, ctx.net)
    log.info("resuming %s (%s) from epoch %d", ctx.spec.run_id, ctx.stage, state.epoch)
    return state


def start_tracking(ctx: RunContext, state: TrainState, tracker) -> None:
    """Start (or, on resume, reopen) the run's MLflow run; log its tags, parameters and dataset."""
    from salience.tracking import experiment_name, git_commit

    spec = ctx.spec
    tags = {
        "stage": ctx.stage,
        "config_hash": ctx.fingerprint,
        "git_commit": git_commit(),
        "weights_origin": ctx.weights_origin,
        "dataset": spec.dataset,
        "fold": spec.fold,
        "backbone": spec.backbone,
        "method": spec.method,
        "variant": spec.variant,
        "seed": str(spec.seed),
    }
    state.mlflow_run = tracker.start(
        experiment_name(ctx.resolved["task"]), spec.run_id, tags, resume=state.mlflow_run
    )
    tracker.log_params({"stage": ctx.stage, **ctx.resolved})
    tracker.log_dataset(ctx.ds.meta, ctx.ds.root)  # the runs table's Dataset column, lineage
