"""Score a trained model on a prepared split: scores.csv, metrics.json, MLflow test metrics.

Streams the split (memory stays flat for a 700k-image test set) and computes logits, the CAMs for
the agreement score, and nothing else, in one forward pass per batch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salience import config as C
from salience import study
from salience.cam import minmax, true_false_cams
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.errors import CheckpointError, DataError
from salience.evaluation.metrics import pearson_agreement, subset_metrics
from salience.io import atomic_paths
from salience.methods.base import Method, build_method
from salience.models.base import build_backbone
from salience.training import checkpoint as ckpt
from salience.training.loop import find_backbone, softmax_p1
from salience.training.seeding import pick_device

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
    if method.own_network:
        model = method.build_own_model("none", meta.get("stage", "train"))
    else:
        method.check_backbone(backbone)
        model = method.build_model(
            build_backbone(backbone, weights="none"),
            cam_layer=meta.get("cam_layer", "pooled"),
            stage=meta.get("stage", "train"),
        )
    ckpt.load_model_state(model, obj, path, {"backbone": backbone, "method": method_name})
    return model, method, meta


@torch.no_grad()
def score_split(
    model: torch.nn.Module,
    method: Method,
    ds: PreparedDataset,
    rows: np.ndarray,
    grid: int,
    batch_size: int,
    device: torch.device,
    flip_maps: bool = False,
) -> tuple[pd.DataFrame, float | None]:
    """Per-image scores and the mean CAM–human agreement over annotated rows (None if none).
    `flip_maps`: a model that reads maps as input (GazeGNN) gets 1 − h, as in its training."""
    model.eval()
    flip = flip_maps and method.maps_at_test
    stream = BatchStream(ds, rows, batch_size, cam_grid=grid, device=device, flip_maps=flip)
    has_cams = hasattr(model, "forward_all") and hasattr(model, "cams") and not method.maps_at_test
    logits_all, agree = [], []
    for batch in stream:
        if has_cams:
            out = model.forward_all(batch["image"])
            logits = out.logits
            if bool(batch["has_map_cam"].any()):
                t, _ = true_false_cams(model.cams(out), batch["label"])
                m = batch["has_map_cam"]
                agree.append(
                    pearson_agreement(
                        minmax(t[m]).float().cpu().numpy(), batch["map_cam"][m].cpu().numpy()
                    )
                )
        else:
            logits = method.logits(model, batch)
        logits_all.append(logits.float().cpu().numpy())
    logits = np.concatenate(logits_all) if logits_all else np.zeros((0, 2), np.float32)
    idx = ds.index.iloc[rows]
    scores = pd.DataFrame(
        {
            "row": rows,
            "split": idx["split"].to_numpy(),
            "subset": idx["subset"].fillna("").to_numpy(),
            "label": idx["label"].to_numpy(),
            "logit0": logits[:, 0],
            "logit1": logits[:, 1],
            "p1": softmax_p1(logits),
            "p_sigmoid1": 1.0 / (1.0 + np.exp(-logits[:, 1])),
        }
    )
    r = np.concatenate(agree) if agree else np.zeros(0)
    r = r[np.isfinite(r)]
    return scores, (float(r.mean()) if len(r) else None)


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
    out_dir, both only once everything is computed (a killed job leaves neither, only .tmp-*)."""
    dev = pick_device(device)
    model, meth, meta = load_trained(Path(model_path), backbone, method, run=run)
    model.to(dev)
    ds = PreparedDataset(prepared)
    trained = meta.get("image_size")
    if trained is not None and int(trained) != ds.image_size:
        # a pooled CNN accepts any size, so scores would come out, from images it never saw
        raise DataError(
            f"{model_path}: trained on {trained}×{trained} images, but {prepared} holds "
            f"{ds.image_size}×{ds.image_size}; evaluate on data prepared at image_size {trained}"
        )
    rows = ds.rows(split)
    if len(rows) == 0:
        raise C.ConfigError(f"{prepared}: split {split!r} is empty")
    from salience.models.base import feature_grid

    grid = feature_grid(find_backbone(model), ds.image_size)
    meth.prepare_eval(ds.index["has_map"].to_numpy()[rows], f"{prepared}: {split} split")
    scores, agreement = score_split(model, meth, ds, rows, grid, batch_size, dev, flip_maps)
    what = what or f"{model_path} on {prepared}:{split}"
    metrics = subset_metrics(scores, what)
    if meta.get("val_constant_scores"):
        metrics["constant_scores"] = True
        metrics.setdefault("warnings", []).append(
            f"{what}: the selected epoch scored every validation image the same "
            "(model selection could not rank; tables mark the cell)"
        )
    for warning in metrics.get("warnings", []):
        log.warning("%s", warning)
    metrics.update(
        {
            "cam_agreement": agreement,
            "split": split,
            "checkpoint": str(model_path),
            "best_epoch": meta.get("best_epoch"),
            **getattr(meth, "eval_notes", lambda: {})(),
            **(extra or {}),
        }
    )
    # as write_json: NaN is refused
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_paths(out_dir / "scores.csv", out_dir / "metrics.json") as (
        tmp_scores,
        tmp_metrics,
    ):
        scores.to_csv(tmp_scores, index=False)
        tmp_metrics.write_text(text)
    return metrics


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
        from salience.io import read_json
        from salience.tracking import experiment_name

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
        if metrics.get("cam_agreement") is not None:
            flat["test_cam_agreement"] = metrics["cam_agreement"]
        tracker.log_metrics(flat)
        for name in ("model.pt", "scores.csv", "metrics.json", "history.csv", "run.json"):
            if (rdir / name).exists():
                tracker.log_artifact(rdir / name)
        tracker.end("FINISHED")
    return metrics
