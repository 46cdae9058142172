"""Setting up one training run/stage: the resolved config, the data splits, the selection rule,
the model (with the earlier stage's weights) and its optimiser, gathered in a `RunContext`.

Every refusal (unknown stage, empty split, BatchNorm with batches of one, single-class val split)
happens here, before the run folder exists: a refused run leaves nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salience import checkpoint as ckpt
from salience import config as C
from salience import study
from salience.data.prepared import PreparedDataset
from salience.device import pick_device
from salience.errors import DataError
from salience.methods.base import Method, build_method
from salience.models.base import build_backbone, feature_grid, find_backbone
from salience.training.seeding import configure_determinism, seed_everything
from salience.training.state import Trainable

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What one run/stage reads from set-up to outputs. `set_up_run` fills every field; the
    fields after `device` are set in its later steps (data, selection, network)."""

    spec: C.RunSpec
    stage: str
    resolved: dict[str, Any]
    method: Method
    out: Path  # the stage's output folder (created only once set-up succeeded)
    device: torch.device
    ds: PreparedDataset = field(init=False)
    rows_train: np.ndarray = field(init=False)
    rows_val: np.ndarray = field(init=False)
    sel_metric: str = field(init=False)  # "val_auroc" or "val_loss" (the method's choice)
    sel_mode: str = field(init=False)  # "max", "min" or "last"
    grid: int = field(init=False)  # side of the CAM grid at the data's image size
    net: Trainable = field(init=False)
    fingerprint: str = field(init=False)  # config hash of (resolved config, stage)

    @property
    def tcfg(self) -> dict[str, Any]:
        return self.resolved["train"]

    @property
    def epochs(self) -> int:
        return self.method.stage_epochs(self.stage, self.tcfg["epochs"])

    @property
    def tag(self) -> str:
        """`[<run id> <stage>]`: the prefix of the run's console lines."""
        return f"[{self.spec.run_id} {self.stage}]"

    @property
    def weights_origin(self) -> str:
        return find_backbone(self.net.model).weights_origin


def set_up_run(cfg: dict, spec: C.RunSpec, stage: str) -> RunContext:
    """Resolve, check and build everything a run/stage needs, in the order that fixes its random
    numbers: the global seed is set after the data checks and before the model is built."""
    resolved = study.resolve_run(cfg, spec)
    method = build_method(spec.method, resolved["method_params"])
    if stage not in method.stages:
        raise C.ConfigError(
            f"method {spec.method!r} has stages {', '.join(method.stages)}; not {stage!r}"
        )
    ctx = RunContext(
        spec=spec,
        stage=stage,
        resolved=resolved,
        method=method,
        out=stage_dir(C.run_dir(cfg, spec), stage, method),
        device=_device(resolved["train"]),
    )
    _load_splits(ctx, cfg)
    _choose_selection(ctx)
    seed_everything(spec.seed)
    method.prepare_eval(
        ctx.ds.index["has_map"].to_numpy()[ctx.rows_val], f"{ctx.ds.root}: val split"
    )
    model = _build_model(ctx, cfg)
    ctx.net = Trainable(model, *build_optimizer(model, method.optimizer(stage, ctx.tcfg)))
    ctx.fingerprint = C.config_hash({"resolved": resolved, "stage": stage})
    return ctx


def stage_dir(run_dir: Path, stage: str, method: Method) -> Path:
    """Outputs of the final stage live in the run folder; earlier stages in stage-<name>/."""
    return run_dir if stage == method.stages[-1] else run_dir / f"stage-{stage}"


def split_rows(ds: PreparedDataset, split: str, fold: str) -> np.ndarray:
    """Rows of a split for a fold: the held-out subset is removed from train and val only."""
    exclude = () if fold == "all" else (fold,)
    if fold != "all" and fold not in ds.subsets():
        raise DataError(
            f"{ds.root}: fold {fold!r} is not a subset of this dataset (subsets: {', '.join(ds.subsets())})"
        )
    rows = ds.rows(split, exclude_subsets=exclude if split != "test" else ())
    if len(rows) == 0:
        raise DataError(
            f"{ds.root}: split {split!r} is empty for fold {fold!r}; add rows to the manifest"
        )
    return rows


def _device(tcfg: dict[str, Any]) -> torch.device:
    """`train.device`, deterministic kernels and the torch thread count."""
    device = pick_device(tcfg["device"])
    configure_determinism(tcfg["deterministic"], device)
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])
    return device


def _load_splits(ctx: RunContext, cfg: dict) -> None:
    """The prepared dataset (checked against the config), its train and val rows for the fold,
    and the method's check of the annotated fraction of the training rows."""
    spec = ctx.spec
    ds = PreparedDataset(C.prepared_dir(cfg, spec.dataset))
    ds.check_config(spec.dataset, ctx.resolved["data"], C.manifest_path(cfg, spec.dataset))
    ctx.ds = ds
    ctx.rows_train = split_rows(ds, "train", spec.fold)
    ctx.rows_val = split_rows(ds, "val", spec.fold)
    ctx.method.check_annotated(
        ds.index["has_map"].to_numpy()[ctx.rows_train],
        ctx.tcfg["min_annotated_fraction"],
        run=spec.run_id,
        where=f"fold {spec.fold!r} in {ds.root}",
        manifest=ds.meta.get("source", {}).get("manifest", "its manifest"),
    )


def _choose_selection(ctx: RunContext) -> None:
    """The method's model-selection metric and mode for this stage, checked against the val split."""
    ctx.sel_metric, ctx.sel_mode = ctx.method.selection(ctx.stage)
    index = ctx.ds.index
    if ctx.sel_metric == "val_loss" and not index["has_map"].to_numpy()[ctx.rows_val].any():
        # a map-prediction loss is 0 on unannotated rows: with no annotated val row every epoch
        # would tie, so keep the last epoch instead (docs/decisions.md)
        log.warning(
            "%s (%s): val split has no saliency maps; selecting the last epoch",
            ctx.spec.run_id,
            ctx.stage,
        )
        ctx.sel_mode = "last"
    if (
        ctx.sel_metric == "val_auroc"
        and len(np.unique(index["label"].to_numpy()[ctx.rows_val])) < 2
    ):
        raise DataError(
            f"{ctx.ds.root}: val split of fold {ctx.spec.fold!r} has a single class; AUROC-based model selection needs both"
        )


def _build_model(ctx: RunContext, cfg: dict) -> torch.nn.Module:
    """The method's model on the run's device, its CAM grid (`ctx.grid`), and the weights of the
    method's earlier stage (two-stage methods)."""
    spec, method, stage = ctx.spec, ctx.method, ctx.stage
    k = ctx.ds.num_classes
    model = build_model_for(spec, ctx.resolved, method, stage, num_classes=k).to(ctx.device)
    check_batchnorm_batches(ctx, model)
    ctx.grid = grid = feature_grid(find_backbone(model), ctx.ds.image_size)
    if grid < 2 and method.uses_maps:
        log.warning(
            "%s: %s gives a %d×%d CAM grid at %d px: CAMs and map losses carry no spatial information; "
            "prepare the data at a larger image_size",
            spec.run_id,
            spec.backbone,
            grid,
            grid,
            ctx.ds.image_size,
        )
    previous = None
    idx = method.stages.index(stage)
    if idx > 0:
        prev_path = stage_dir(C.run_dir(cfg, spec), method.stages[idx - 1], method) / "model.pt"
        previous = ckpt.load(prev_path)["state_dict"]
    method.init_stage(model, stage, previous)
    if ctx.tcfg["channels_last"] and ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def check_batchnorm_batches(ctx: RunContext, model: torch.nn.Module) -> None:
    """Refuse training batches of one sample on a model with BatchNorm (one line, before any
    output). BatchNorm in training mode normalises each channel over the batch: with one sample it
    fails on a 1×1 feature map ("Expected more than 1 value per channel") and otherwise normalises
    a sample by its own statistics. A last batch of one is merged instead (BatchStream); a batch
    size of 1, or a training split of one row, leaves nothing to merge with."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    spec, batch_size = ctx.spec, ctx.tcfg["batch_size"]
    what = f"{spec.run_id} ({ctx.stage}): {spec.backbone}/{spec.method} has BatchNorm layers, which need two or more samples per training batch"
    if batch_size < 2:
        raise C.ConfigError(
            f"train.batch_size is {batch_size}: {what}; set train.batch_size to 2 or more"
        )
    if len(ctx.rows_train) < 2:
        raise DataError(
            f"{ctx.ds.root}: the train split of fold {spec.fold!r} holds {len(ctx.rows_train)} row: {what}; add training rows"
        )


def build_model_for(
    spec: C.RunSpec, resolved: dict, method: Method, stage: str, num_classes: int = 2
) -> torch.nn.Module:
    """The method's model with `num_classes` outputs on a fresh backbone (or its own network,
    GazeGNN)."""
    if method.own_network:  # GazeGNN: the grid backbone only places the run
        return method.build_own_model(resolved["model"]["weights"], stage, num_classes)
    method.check_backbone(spec.backbone)
    backbone = build_backbone(spec.backbone, weights=resolved["model"]["weights"])
    return method.build_model(
        backbone, cam_layer=resolved["model"]["cam_layer"], stage=stage, num_classes=num_classes
    )


def build_optimizer(model: torch.nn.Module, o: dict[str, Any]) -> tuple[Any, Any]:
    """Optimiser + StepLR from a method's `optimizer(stage, train)` settings."""
    if o["name"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
        )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=o["lr_step"], gamma=o["lr_gamma"])
    return opt, sched
