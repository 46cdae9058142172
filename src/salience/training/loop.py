"""One training run (or one stage of a two-stage method): seeded, resumable, validated each epoch.

- SGD(momentum, weight decay) + StepLR stepped once per epoch after validation (all CVRL code).
- Model selection on the validation split only (never test): the method says which metric.
- After every epoch an atomic `checkpoint.pt` holds everything needed to resume; a rerun of the
  same command continues from it and ends with exactly the metrics of an uninterrupted run (the
  shuffle and the torch RNG are re-seeded from (seed, epoch) at every epoch start).
- A non-finite loss stops the run with a message naming epoch and batch.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from salience import config as C
from salience import study
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.errors import CheckpointError, DataError, TrainingDiverged
from salience.evaluation.metrics import auroc, constant_scores, logit_margin
from salience.io import atomic_path, write_json
from salience.methods.base import Method, build_method
from salience.models.base import Backbone, build_backbone, feature_grid
from salience.training import checkpoint as ckpt
from salience.training.seeding import configure_determinism, pick_device, seed_everything

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


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


def check_batchnorm_batches(
    model: torch.nn.Module,
    spec: C.RunSpec,
    stage: str,
    ds: PreparedDataset,
    rows: np.ndarray,
    batch_size: int,
) -> None:
    """Refuse training batches of one sample on a model with BatchNorm (one line, before any
    output). BatchNorm in training mode normalises each channel over the batch: with one sample it
    fails on a 1×1 feature map ("Expected more than 1 value per channel") and otherwise normalises
    a sample by its own statistics. A last batch of one is merged instead (BatchStream); a batch
    size of 1, or a training split of one row, leaves nothing to merge with."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    what = f"{spec.run_id} ({stage}): {spec.backbone}/{spec.method} has BatchNorm layers, which need two or more samples per training batch"
    if batch_size < 2:
        raise C.ConfigError(
            f"train.batch_size is {batch_size}: {what}; set train.batch_size to 2 or more"
        )
    if len(rows) < 2:
        raise DataError(
            f"{ds.root}: the train split of fold {spec.fold!r} holds {len(rows)} row: {what}; add training rows"
        )


def build_model_for(spec: C.RunSpec, resolved: dict, method: Method, stage: str) -> torch.nn.Module:
    if method.own_network:  # GazeGNN: the grid backbone only places the run
        return method.build_own_model(resolved["model"]["weights"], stage)
    method.check_backbone(spec.backbone)
    backbone = build_backbone(spec.backbone, weights=resolved["model"]["weights"])
    return method.build_model(backbone, cam_layer=resolved["model"]["cam_layer"], stage=stage)


def find_backbone(model: torch.nn.Module) -> Backbone:
    """The (first) Backbone inside any method's model."""
    for m in model.modules():
        if isinstance(m, Backbone):
            return m
    raise TypeError(f"{type(model).__name__} contains no Backbone")


@torch.no_grad()
def predict(
    method: Method, model: torch.nn.Module, stream: BatchStream
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits N×2) over a stream, in eval mode; restores the previous mode."""
    was = model.training
    model.eval()
    labels, logits = [], []
    for batch in stream:
        out = method.logits(model, batch).float()
        labels.append(batch["label"].cpu().numpy())
        logits.append(out.cpu().numpy())
    model.train(was)
    return np.concatenate(labels), np.concatenate(logits)


@torch.no_grad()
def mean_loss(method: Method, model: torch.nn.Module, stream: BatchStream, stage: str) -> float:
    was = model.training
    model.eval()
    total, n = 0.0, 0
    for batch in stream:
        total += float(method.loss(model, batch, stage).total) * len(batch["label"])
        n += len(batch["label"])
    model.train(was)
    return total / max(n, 1)


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


def val_auroc(labels: np.ndarray, logits: np.ndarray, what: str) -> tuple[float, bool]:
    """Model-selection AUROC of p1 from N×2 logits, ranked by the float64 margin l₁ − l₀ (p1 in
    float32 saturates to 1.0 past a margin of ~17 and would tie), and whether every score is equal."""
    margin = logit_margin(logits)
    return auroc(labels, margin, what), constant_scores(margin)


def softmax_p1(logits: np.ndarray) -> np.ndarray:
    """p1 = softmax(l)[1] = σ(l1 − l0): the probability column of scores.csv. Never ranked
    (it saturates to 1.0 in float32): AUROCs rank by `metrics.logit_margin`."""
    return 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))


class _Progress:
    """tqdm on a terminal; plain periodic lines in log files (Snakemake redirects to logs/)."""

    def __init__(self, total: int, desc: str) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.desc, self.n, self.t0 = total, desc, 0, time.time()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False)
        self.every = max(1, total // 4)

    def update(self, loss: float) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.n % self.every == 0 or self.n == self.total:
            print(
                f"{self.desc} batch {self.n}/{self.total} loss {loss:.4f} ({time.time() - self.t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(cfg: dict, spec: C.RunSpec, stage: str = "train", tracker=None) -> Path:
    """Train one run/stage; returns the folder holding model.pt. Resumes from checkpoint.pt."""
    resolved = study.resolve_run(cfg, spec)
    method = build_method(spec.method, resolved["method_params"])
    if stage not in method.stages:
        raise C.ConfigError(
            f"method {spec.method!r} has stages {', '.join(method.stages)}; not {stage!r}"
        )
    tcfg = resolved["train"]
    out = stage_dir(C.run_dir(cfg, spec), stage, method)
    device = pick_device(tcfg["device"])
    configure_determinism(tcfg["deterministic"], device)
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])

    ds = PreparedDataset(C.prepared_dir(cfg, spec.dataset))
    ds.check_config(spec.dataset, resolved["data"], C.manifest_path(cfg, spec.dataset))
    rows_train = split_rows(ds, "train", spec.fold)
    rows_val = split_rows(ds, "val", spec.fold)
    method.check_annotated(
        ds.index["has_map"].to_numpy()[rows_train],
        tcfg["min_annotated_fraction"],
        run=spec.run_id,
        where=f"fold {spec.fold!r} in {ds.root}",
        manifest=ds.meta.get("source", {}).get("manifest", "its manifest"),
    )
    sel_metric, sel_mode = method.selection(stage)
    if sel_metric == "val_loss" and not ds.index["has_map"].to_numpy()[rows_val].any():
        # a map-prediction loss is 0 on unannotated rows: with no annotated val row every epoch
        # would tie, so keep the last epoch instead (docs/decisions.md)
        log.warning(
            "%s (%s): val split has no saliency maps; selecting the last epoch", spec.run_id, stage
        )
        sel_mode = "last"
    if sel_metric == "val_auroc" and len(np.unique(ds.index["label"].to_numpy()[rows_val])) < 2:
        raise DataError(
            f"{ds.root}: val split of fold {spec.fold!r} has a single class; AUROC-based model selection needs both"
        )

    seed_everything(spec.seed)
    method.prepare_eval(ds.index["has_map"].to_numpy()[rows_val], f"{ds.root}: val split")
    model = build_model_for(spec, resolved, method, stage).to(device)
    check_batchnorm_batches(model, spec, stage, ds, rows_train, tcfg["batch_size"])
    grid = feature_grid(find_backbone(model), ds.image_size)
    if grid < 2 and method.uses_maps:
        log.warning(
            "%s: %s gives a %d×%d CAM grid at %d px: CAMs and map losses carry no spatial information; "
            "prepare the data at a larger image_size",
            spec.run_id,
            spec.backbone,
            grid,
            grid,
            ds.image_size,
        )
    previous = None
    idx = method.stages.index(stage)
    if idx > 0:
        prev_path = stage_dir(C.run_dir(cfg, spec), method.stages[idx - 1], method) / "model.pt"
        previous = ckpt.load(prev_path)["state_dict"]
    method.init_stage(model, stage, previous)
    if tcfg["channels_last"] and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    opt, sched = build_optimizer(model, method.optimizer(stage, tcfg))
    state: dict[str, Any] = {
        "epoch": 0,
        "best": None,
        "best_epoch": -1,
        "best_state": None,
        "history": [],
        "mlflow_run": None,
    }
    fingerprint = C.config_hash({"resolved": resolved, "stage": stage})
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves no folder behind
    ck_path = out / "checkpoint.pt"
    if ck_path.exists():
        state = _resume(ck_path, fingerprint, model, opt, sched)
        log.info("resuming %s (%s) from epoch %d", spec.run_id, stage, state["epoch"])

    if tracker is not None:
        tags = {
            "stage": stage,
            "config_hash": fingerprint,
            "git_commit": _git(),
            "weights_origin": find_backbone(model).weights_origin,
            "dataset": spec.dataset,
            "fold": spec.fold,
            "backbone": spec.backbone,
            "method": spec.method,
            "variant": spec.variant,
            "seed": str(spec.seed),
        }
        state["mlflow_run"] = tracker.start(
            _experiment(resolved), spec.run_id, tags, resume=state.get("mlflow_run")
        )
        tracker.log_params({"stage": stage, **resolved})
        tracker.log_dataset(ds.meta, ds.root)  # the runs table's Dataset column, lineage

    autocast = tcfg["bf16"] and device.type == "cuda"
    epochs = method.stage_epochs(stage, tcfg["epochs"])
    for epoch in range(state["epoch"], epochs):
        torch.manual_seed(spec.seed * 100_003 + epoch)  # per-epoch RNG: resume == uninterrupted
        stream = BatchStream(
            ds,
            rows_train,
            tcfg["batch_size"],
            cam_grid=grid,
            shuffle=True,
            seed=spec.seed,
            epoch=epoch,
            flip_maps=resolved["flip_maps"],
            device=device,
            no_singleton=True,
        )
        if epoch == state["epoch"] and stream.merges_singleton:
            log.info(
                "%s: %d training rows in batches of %d would leave a last batch of one sample; it is merged "
                "into the batch before it (BatchNorm needs two samples)",
                spec.run_id,
                len(rows_train),
                tcfg["batch_size"],
            )
        model.train()
        sums: dict[str, float] = {}
        n_seen = 0
        progress = _Progress(len(stream), f"[{spec.run_id} {stage}] epoch {epoch + 1}/{epochs}")
        for b, batch in enumerate(stream):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                lo = method.loss(model, batch, stage)
            value = float(lo.total.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"{spec.run_id} ({stage}): loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
                    f"lower train.lr (now {tcfg['lr']}) or check the data"
                )
            opt.zero_grad(set_to_none=True)
            lo.total.backward()
            opt.step()
            bs = len(batch["label"])
            n_seen += bs
            for k, v in {"loss": lo.total, **lo.parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
            progress.update(value)
        progress.close()
        row = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            **{f"train_{k}": v / n_seen for k, v in sums.items()},
        }
        sched.step()
        # model selection reads the maps training reads: 1 − h in a flipped-map (sanity) run, so a
        # map-based validation loss (MENTOR stage 1) or a map-reading model is judged on its target
        val_stream = BatchStream(
            ds,
            rows_val,
            tcfg["eval_batch_size"],
            cam_grid=grid,
            flip_maps=resolved["flip_maps"],
            device=device,
        )
        if sel_metric == "val_loss":
            row["val_loss"] = mean_loss(method, model, val_stream, stage)
        else:
            labels, logits = predict(method, model, val_stream)
            row["val_auroc"], const = val_auroc(labels, logits, f"{spec.run_id} val split")
            row["val_constant_scores"] = int(const)
            if const:
                log.warning(
                    "%s (%s): epoch %d scores every validation image the same; AUROC 0.5 by ties",
                    spec.run_id,
                    stage,
                    epoch + 1,
                )
        value = row[sel_metric]
        # strict improvement: the earliest epoch wins ties (CYBORG's `>=` let the latest win)
        better = (
            state["best"] is None
            or sel_mode == "last"
            or (value > state["best"] if sel_mode == "max" else value < state["best"])
        )
        if better:
            state.update(
                best=value,
                best_epoch=epoch + 1,
                best_state=copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()}),
            )
        state["history"].append(row)
        state["epoch"] = epoch + 1
        print(
            f"[{spec.run_id} {stage}] epoch {epoch + 1}: "
            + " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"),
            file=sys.stderr,
            flush=True,
        )
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        ckpt.save(_checkpoint(state, fingerprint, model, opt, sched), ck_path)

    meta = {
        "run_id": spec.run_id,
        "backbone": spec.backbone,
        "method": spec.method,
        "stage": stage,
        "cam_layer": resolved["model"]["cam_layer"],
        "image_size": ds.image_size,
        "cam_grid": grid,
        "best_epoch": state["best_epoch"],
        sel_metric: state["best"],
        "weights_origin": find_backbone(model).weights_origin,
        "method_params": resolved["method_params"],
        # the selected epoch scored every validation image the same (evaluation warns about it)
        "val_constant_scores": bool(
            state["best_epoch"] > 0
            and state["history"][state["best_epoch"] - 1].get("val_constant_scores", 0)
        ),
    }
    with atomic_path(out / "history.csv") as tmp:
        pd.DataFrame(state["history"]).to_csv(tmp, index=False)
    write_json(
        out / "run.json",
        {
            **resolved,
            "stage": stage,
            "stage_epochs": epochs,
            "best_epoch": state["best_epoch"],
            "selection": sel_metric,
            "weights_origin": find_backbone(model).weights_origin,
            "mlflow_run": state["mlflow_run"],
            "config_hash": fingerprint,
        },
    )
    ckpt.save(
        {"state_dict": state["best_state"], "meta": meta}, out / "model.pt"
    )  # last: Snakemake's output
    if tracker is not None:
        tracker.log_metrics(
            {f"best_{sel_metric}": state["best"], "best_epoch": state["best_epoch"]}
        )
        if stage != method.stages[-1]:
            tracker.end("FINISHED")
    return out


def _checkpoint(state: dict, fingerprint: str, model, opt, sched) -> dict:
    return {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "epoch": state["epoch"],
        "best": state["best"],
        "best_epoch": state["best_epoch"],
        "best_state": state["best_state"],
        "history": state["history"],
        "mlflow_run": state["mlflow_run"],
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
    }


def _resume(path: Path, fingerprint: str, model, opt, sched) -> dict:
    """State of an interrupted attempt. The file is untrusted (weights_only; code is refused)."""
    restart = "delete it to restart the run"
    obj = ckpt.read(
        path, fix=restart
    )  # a torn write cannot happen (atomic), but a foreign file can
    keys = (
        "epoch",
        "best",
        "best_epoch",
        "best_state",
        "history",
        "mlflow_run",
        "model",
        "opt",
        "sched",
    )
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
        model.load_state_dict(obj["model"])
        opt.load_state_dict(obj["opt"])
        sched.load_state_dict(obj["sched"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: checkpoint does not fit this run's model ({first}); {restart}"
        ) from None
    return {
        k: obj[k] for k in ("epoch", "best", "best_epoch", "best_state", "history", "mlflow_run")
    }


def _experiment(resolved: dict) -> str:
    from salience.tracking import experiment_name

    return experiment_name(resolved["task"])


def _git() -> str:
    from salience.tracking import git_commit

    return git_commit()
