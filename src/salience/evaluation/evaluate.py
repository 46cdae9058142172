"""Score a trained model on a prepared split: scores.csv, metrics.json, MLflow test metrics.

Streams the split (memory stays flat for a 700k-image test set) and computes logits, the CAMs for
the agreement score, and nothing else, in one forward pass per batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salience import checkpoint as ckpt
from salience import config as C
from salience import study
from salience.cam import minmax
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.device import pick_device
from salience.errors import CheckpointError, DataError
from salience.evaluation.metrics import pearson_agreement, subset_metrics
from salience.evaluation.multiclass import kclass_test_metrics
from salience.io import atomic_paths, read_json
from salience.methods.base import Method, build_method
from salience.models.base import build_backbone, feature_grid, find_backbone
from salience.scores import softmax, softmax_p1

log = logging.getLogger(__name__)


def load_trained(
    path: Path,
    backbone: str | None = None,
    method_name: str | None = None,
    run: C.RunSpec | None = None,
) -> tuple[torch.nn.Module, Method, dict]:
    """Rebuild the model a `model.pt` was trained as and load its weights (weights_only).
    With `run`, the file must be that run's model (its metadata names the run, backbone and method)."""
    obj = ckpt.load(path)
    meta = obj.get("meta") or {}
    if run is not None:
        want = {"run_id": run.run_id, "backbone": run.backbone, "method": run.method}
        if any(meta.get(k, v) != v for k, v in want.items()):
            raise CheckpointError(
                f"{path}: holds the model of run {meta.get('run_id', '?')} (backbone {meta.get('backbone', '?')}, "
                f"method {meta.get('method', '?')}), not of {run.run_id}; delete it and retrain this run"
            )
    backbone = backbone or meta.get("backbone")
    method_name = method_name or meta.get("method")
    if not backbone or not method_name:
        raise C.ConfigError(
            f"{path}: checkpoint has no backbone/method metadata; pass --backbone and --method"
        )
    method = build_method(method_name, meta.get("method_params"))
    # K-class heads (issue 12): model.pt records num_classes; older checkpoints are binary
    k = int(meta.get("num_classes", 2))
    if method.own_network:
        model = method.build_own_model("none", meta.get("stage", "train"), k)
    else:
        method.check_backbone(backbone)
        model = method.build_model(
            build_backbone(backbone, weights="none"),
            cam_layer=meta.get("cam_layer", "pooled"),
            stage=meta.get("stage", "train"),
            num_classes=k,
        )
    ckpt.load_model_state(model, obj, path, {"backbone": backbone, "method": method_name})
    return model, method, meta


@dataclass(frozen=True)
class EvalSplit:
    """What `score_split` streams: `rows` of `ds` in batches of `batch_size` on `device`, with maps
    pooled to the `grid`×`grid` CAM grid. `flip_maps`: a model that reads maps as input (GazeGNN)
    gets 1 − h, as in its (sanity) training."""

    ds: PreparedDataset
    rows: np.ndarray
    grid: int
    batch_size: int
    device: torch.device
    flip_maps: bool = False


@torch.no_grad()
def score_split(
    model: torch.nn.Module, method: Method, split: EvalSplit
) -> tuple[pd.DataFrame, float | None]:
    """Per-image scores (one row per `split.rows` entry: row, split, subset, label, logit0, logit1,
    p1, p_sigmoid1) and the mean CAM–human agreement over annotated rows (None if none)."""
    ds, rows, grid, flip_maps = split.ds, split.rows, split.grid, split.flip_maps
    batch_size, device = split.batch_size, split.device
    model.eval()
    flip = flip_maps and method.maps_at_test
    stream = BatchStream(ds, rows, batch_size, cam_grid=grid, device=device, flip_maps=flip)
    logits_all, agree = [], []
    for batch in stream:
        logits, cams = method.forward_eval(model, batch)
        if cams is not None and bool(batch["has_map_cam"].any()):
            t, m = cams[0], batch["has_map_cam"]
            agree.append(
                pearson_agreement(
                    minmax(t[m]).float().cpu().numpy(), batch["map_cam"][m].cpu().numpy()
                )
            )
        logits_all.append(logits.float().cpu().numpy())
    logits = np.concatenate(logits_all) if logits_all else np.zeros((0, 2), np.float32)
    idx = ds.index.iloc[rows]
    scores = pd.DataFrame(
        {
            "row": rows,
            "split": idx["split"].to_numpy(),
            "subset": idx["subset"].fillna("").to_numpy(),
            "label": idx["label"].to_numpy(),
            **_score_columns(logits),
        }
    )
    r = np.concatenate(agree) if agree else np.zeros(0)
    r = r[np.isfinite(r)]
    return scores, (float(r.mean()) if len(r) else None)


def _score_columns(logits: np.ndarray) -> dict[str, np.ndarray]:
    """scores.csv's score columns. N×2: logit0, logit1, p1 = softmax₁ and p_sigmoid1 = σ(l₁) (the
    binary layout). N×K, K > 2: logit0…logit{K−1} and the softmax probabilities p0…p{K−1}."""
    k = logits.shape[1]
    if k == 2:
        return {
            "logit0": logits[:, 0],
            "logit1": logits[:, 1],
            "p1": softmax_p1(logits),
            "p_sigmoid1": 1.0 / (1.0 + np.exp(-logits[:, 1])),
        }
    probs = softmax(logits).astype(logits.dtype)
    return {
        **{f"logit{c}": logits[:, c] for c in range(k)},
        **{f"p{c}": probs[:, c] for c in range(k)},
    }


def class_names(ds: PreparedDataset, meta: dict, k: int, model_path: Path) -> list[str]:
    """Names of the model's K output classes: the prepared data's meta.json `classes` (label index
    order, K > 2 datasets only), else model.pt's, else "0"…"K−1". A count that differs from the
    model's head is a one-line DataError (check_model_classes)."""
    check_model_classes(ds, k, model_path)
    classes = ds.meta.get("classes") or meta.get("classes") or [str(c) for c in range(k)]
    return [str(c) for c in classes]


def check_model_classes(
    ds: PreparedDataset, k: int, model_path: Path, verb: str = "evaluate"
) -> None:
    """DataError (one line) unless the model's K outputs match the prepared data's classes, in
    either direction: a binary model on K-class data, or a K-class model on binary data (meta.json
    without `classes`, i.e. 2 classes; docs/data.md "K classes"). Called before anything is
    written or scored."""
    listed = ds.meta.get("classes")
    n = len(listed) if listed else 2
    if n == k:
        return
    what = (
        f"lists {n} classes {list(listed)}"
        if listed
        else "lists no classes (a binary dataset: 2 classes, 0 and 1)"
    )
    raise DataError(
        f"{model_path}: the model has {k} outputs, but {ds.root}/meta.json {what}; "
        f"{verb} on the data the model was trained on"
    )


def evaluate_checkpoint(
    model_path: Path,
    prepared: Path,
    split: str,
    out_dir: Path,
    *,
    batch_size: int = 128,
    device: str = "auto",
    backbone: str | None = None,
    method: str | None = None,
    what: str | None = None,
    run: C.RunSpec | None = None,
    extra: dict | None = None,
    flip_maps: bool = False,
) -> dict:
    """Score any checkpoint on any prepared split; writes scores.csv and metrics.json (+ `extra`) in
    out_dir, both only once everything is computed (a killed job leaves neither, only .tmp-*).

    Errors (one line each): CheckpointError (missing, unsafe or foreign model file), DataError
    (image size differs from training, single-class split), ConfigError (empty split)."""
    dev = pick_device(device)
    model, meth, meta = load_trained(Path(model_path), backbone, method, run=run)
    model.to(dev)
    ds = PreparedDataset(prepared)
    rows = _rows_to_score(ds, split, meta, model_path)
    k = int(meta.get("num_classes", 2))  # the head load_trained rebuilt
    check_model_classes(ds, k, Path(model_path))  # either direction, before any scoring
    named = k > 2 or bool(ds.meta.get("classes"))
    classes = class_names(ds, meta, k, Path(model_path)) if named else None
    grid = feature_grid(find_backbone(model), ds.image_size)
    meth.prepare_eval(ds.index["has_map"].to_numpy()[rows], f"{prepared}: {split} split")
    to_score = EvalSplit(ds, rows, grid, batch_size, dev, flip_maps)
    scores, agreement = score_split(model, meth, to_score)
    what = what or f"{model_path} on {prepared}:{split}"
    metrics = _test_metrics(scores, what, meta, classes)
    metrics.update(
        {
            "cam_agreement": agreement,
            "split": split,
            "checkpoint": str(model_path),
            "best_epoch": meta.get("best_epoch"),
            **meth.eval_notes(),
            **(extra or {}),
        }
    )
    _write_scores(out_dir, scores, metrics)
    return metrics


def _rows_to_score(ds: PreparedDataset, split: str, meta: dict, model_path: Path) -> np.ndarray:
    """Rows of `split`, once the data's image size is the one the model was trained at."""
    trained = meta.get("image_size")
    if trained is not None and int(trained) != ds.image_size:
        # a pooled CNN accepts any size, so scores would come out, from images it never saw
        raise DataError(
            f"{model_path}: trained on {trained}×{trained} images, but {ds.root} holds "
            f"{ds.image_size}×{ds.image_size}; evaluate on data prepared at image_size {trained}"
        )
    rows = ds.rows(split)
    if len(rows) == 0:
        raise C.ConfigError(f"{ds.root}: split {split!r} is empty")
    return rows


def _test_metrics(
    scores: pd.DataFrame, what: str, meta: dict, classes: list[str] | None = None
) -> dict:
    """AUROCs overall and per subset (`classes` given, K > 2: the macro one-vs-rest block of
    `kclass_test_metrics`), with the warning of a model whose selected epoch scored every
    validation image the same (model.pt's `val_constant_scores`); warnings are logged."""
    metrics = (
        subset_metrics(scores, what)
        if classes is None
        else kclass_test_metrics(scores, classes, what)
    )
    if meta.get("val_constant_scores"):
        metrics["constant_scores"] = True
        metrics.setdefault("warnings", []).append(
            f"{what}: the selected epoch scored every validation image the same "
            "(model selection could not rank; tables mark the cell)"
        )
    for warning in metrics.get("warnings", []):
        log.warning("%s", warning)
    return metrics


def _write_scores(out_dir: Path, scores: pd.DataFrame, metrics: dict) -> None:
    """scores.csv and metrics.json, both or neither (temporary files, then rename)."""
    # as write_json: NaN is refused
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_paths(out_dir / "scores.csv", out_dir / "metrics.json") as (
        tmp_scores,
        tmp_metrics,
    ):
        scores.to_csv(tmp_scores, index=False)
        tmp_metrics.write_text(text)


def evaluate_run(cfg: dict, spec: C.RunSpec, tracker=None) -> dict:
    """Evaluate a finished run on its test split and close its MLflow run."""
    rdir = C.run_dir(cfg, spec)
    resolved = study.resolve_run(cfg, spec)
    PreparedDataset(C.prepared_dir(cfg, spec.dataset)).check_config(
        spec.dataset, resolved["data"], C.manifest_path(cfg, spec.dataset)
    )
    metrics = evaluate_checkpoint(
        rdir / "model.pt",
        C.prepared_dir(cfg, spec.dataset),
        "test",
        rdir,
        batch_size=resolved["train"]["eval_batch_size"],
        device=resolved["train"]["device"],
        what=f"{spec.run_id} test split",
        run=spec,
        extra={"epochs": resolved["train"]["epochs"], "run_id": spec.run_id},
        flip_maps=resolved["flip_maps"],
    )
    if tracker is not None:
        from salience.tracking import experiment_name  # MLflow: imported only when tracking

        run = read_json(rdir / "run.json").get("mlflow_run") or tracker.find(
            experiment_name(resolved["task"]), spec.run_id
        )
        if run is None:
            run = tracker.start(
                experiment_name(resolved["task"]), spec.run_id, {"stage": "evaluate"}
            )
        tracker.attach(run)
        flat = {f"test_auroc_{k}": v for k, v in metrics["auroc"].items()}
        flat.update({f"test_auroc_sigmoid_{k}": v for k, v in metrics["auroc_sigmoid"].items()})
        if "accuracy" in metrics:  # K > 2 classes
            flat["test_accuracy"] = metrics["accuracy"]
        if metrics.get("cam_agreement") is not None:
            flat["test_cam_agreement"] = metrics["cam_agreement"]
        tracker.log_metrics(flat)
        for name in ("model.pt", "scores.csv", "metrics.json", "history.csv", "run.json"):
            if (rdir / name).exists():
                tracker.log_artifact(rdir / name)
        tracker.end("FINISHED")
    return metrics
