"""A finished run/stage's files: history.csv (one row per epoch), run.json (the resolved config and
the selection) and, last, model.pt (the selected weights with their metadata: Snakemake's output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from salience import checkpoint as ckpt
from salience.io import atomic_path, write_json
from salience.training.setup import RunContext
from salience.training.state import TrainState


def write_outputs(ctx: RunContext, state: TrainState, tracker=None) -> Path:
    """Write history.csv, run.json and model.pt into `ctx.out`, log the best value to MLflow and
    close the MLflow run of an earlier stage; returns `ctx.out`."""
    out = ctx.out
    with atomic_path(out / "history.csv") as tmp:
        pd.DataFrame(state.history).to_csv(tmp, index=False)
    write_json(out / "run.json", run_record(ctx, state))
    # last: Snakemake's output
    ckpt.save({"state_dict": state.best_state, "meta": model_meta(ctx, state)}, out / "model.pt")
    if tracker is not None:
        tracker.log_metrics({f"best_{ctx.sel_metric}": state.best, "best_epoch": state.best_epoch})
        if ctx.stage != ctx.method.stages[-1]:
            tracker.end("FINISHED")
    return out


def model_meta(ctx: RunContext, state: TrainState) -> dict[str, Any]:
    """model.pt's `meta`: what evaluation needs to rebuild the model and check the data it scores.
    `num_classes` (K) is always recorded, `classes` (their names) only for K > 2, as meta.json."""
    spec, resolved = ctx.spec, ctx.resolved
    classes = ctx.ds.classes
    meta = {
        "run_id": spec.run_id,
        "backbone": spec.backbone,
        "method": spec.method,
        "stage": ctx.stage,
        "cam_layer": resolved["model"]["cam_layer"],
        "image_size": ctx.ds.image_size,
        "cam_grid": ctx.grid,
        "best_epoch": state.best_epoch,
        ctx.sel_metric: state.best,
        "weights_origin": ctx.weights_origin,
        "method_params": resolved["method_params"],
        # the selected epoch scored every validation image the same (evaluation warns about it)
        "val_constant_scores": bool(state.selected_row().get("val_constant_scores", 0)),
        "num_classes": len(classes),
    }
    return meta | ({"classes": classes} if len(classes) > 2 else {})


def run_record(ctx: RunContext, state: TrainState) -> dict[str, Any]:
    """run.json: the resolved config of the run/stage and how its epoch was selected."""
    return {
        **ctx.resolved,
        "stage": ctx.stage,
        "stage_epochs": ctx.epochs,
        "best_epoch": state.best_epoch,
        "selection": ctx.sel_metric,
        "weights_origin": ctx.weights_origin,
        "mlflow_run": state.mlflow_run,
        "config_hash": ctx.fingerprint,
    }
