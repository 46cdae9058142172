"""DD RQ1 measured: agreement and faithfulness of the true-class CAM t, the false-class CAM f and
Difference Salience d = norm(t − f) (DD §3.1, Eq. 1) of one trained CAM-head model.

DD §6.1 answers RQ1 ("does Difference Salience reveal new and plausible features in models trained
to obfuscate their true-class CAMs?") from Fig. 1's pictures. Here, per run:

- plausibility: CC, SIM, KL and NSS of min-max t, f and d against the human map on the CAM grid,
  over every annotated test image (`salience.evaluation.maps`);
- faithfulness: deletion and insertion curves of t, f, d and a random order on a fixed draw of
  test images (`salience.evaluation.faithfulness`).

`score_run` writes `rq1.json` (means, curves, settings) and `rq1_images.csv` (one row per image and
map kind) into the run directory, both or neither. `rq1_runs` is the one definition of which runs
the RQ1 table compares (the workflow asks it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salience import config as C
from salience.cam import minmax
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError, DataError
from salience.evaluation import faithfulness as FA
from salience.evaluation import maps as M
from salience.io import atomic_paths
from salience.methods.base import Method
from salience.study import rq1_runs, rq1_settings

__all__ = [
    "KINDS",
    "rq1_runs",
    "rq1_settings",
    "map_metrics",
    "faithfulness",
    "score_run",
]

KINDS = ("t", "f", "d")  # true-class CAM, false-class CAM, Difference Salience


@torch.no_grad()
def map_metrics(
    model: torch.nn.Module,
    method: Method,
    ds: PreparedDataset,
    rows: np.ndarray,
    grid: int,
    nss_top: float,
    batch_size: int,
    what: str = "model",
) -> pd.DataFrame:
    """CC, SIM, KL, NSS of min-max t, f and d against the human map, for every annotated row of
    `rows`: a long frame with columns row, label, kind, cc, sim, kl, nss (NaN = undefined there:
    a constant or all-zero map). A NaN/inf CAM (a diverged model) is a DataError naming `what`."""
    model.eval()
    annotated = rows[ds.index["has_map"].to_numpy(dtype=bool)[rows]]
    frames = []
    dev = next(model.parameters()).device
    for batch in BatchStream(ds, annotated, batch_size, cam_grid=grid, device=dev):
        t, f = method.cams(model, batch)
        bad = ~torch.isfinite(t - f).flatten(1).all(1)
        if bool(bad.any()):
            row = int(batch["row"][bad][0])
            raise DataError(
                f"{what}: the CAMs of test row {row} contain NaN/inf; the model diverged (retrain it "
                "with a lower train.lr)"
            )
        human = batch["map_cam"].cpu().numpy()
        fix = M.top_fraction_fixations(human, nss_top)
        for kind, m in zip(KINDS, (minmax(t), minmax(f), minmax(t - f)), strict=True):
            p = m.float().cpu().numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "row": batch["row"].cpu().numpy(),
                        "label": batch["label"].cpu().numpy(),
                        "kind": kind,
                        "cc": M.cc(p, human),
                        "sim": M.sim(p, human),
                        "kl": M.kl(p, human),
                        "nss": M.nss(p, fix),
                    }
                )
            )
    cols = ["row", "label", "kind", *M.METRICS]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def pick_rows(ds: PreparedDataset, split: str, n: int, seed: int) -> np.ndarray:
    """A fixed draw of `n` rows of `split`, half of each label (fewer when a label has fewer)."""
    rows = ds.rows(split)
    labels = ds.index["label"].to_numpy()[rows]
    rng = np.random.default_rng(seed)
    out = []
    for label, k in ((0, n // 2), (1, n - n // 2)):
        pool = rows[labels == label]
        out.extend(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist())
    return np.sort(np.asarray(out, dtype=np.int64))


@torch.no_grad()
def faithfulness(
    model: torch.nn.Module, method, ds: PreparedDataset, rows: np.ndarray, grid: int, settings: dict
) -> dict[str, dict[str, np.ndarray]]:
    """Deletion and insertion margin curves ({mode: {kind: B×(steps+1)}}) of t, f, d and random."""
    model.eval()
    dev = next(model.parameters()).device
    batch = BatchStream(ds, rows, len(rows), cam_grid=grid, device=dev).batch(rows)
    x, y = batch["image"], batch["label"]
    t, f = method.cams(model, batch)
    size = tuple(x.shape[-2:])
    seed = int(settings["seed"])
    orders = {
        kind: FA.pixel_order(m.cpu(), size, torch.Generator().manual_seed(seed + 1))
        for kind, m in zip(KINDS, (t, f, t - f), strict=True)
    }
    orders["random"] = FA.random_order(len(rows), size, torch.Generator().manual_seed(seed))

    def logits_fn(images: torch.Tensor) -> torch.Tensor:
        return method.logits(model, {"image": images})

    out: dict[str, dict[str, np.ndarray]] = {}
    for mode in ("deletion", "insertion"):
        out[mode] = {
            kind: FA.margin_curves(
                logits_fn,
                x,
                y,
                order,
                mode=mode,
                steps=int(settings["faithfulness_steps"]),
                sigma=settings["sigma"],
                kernel_size=settings["kernel_size"],
            ).numpy()
            for kind, order in orders.items()
        }
    return out


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def summarize_run(per_image: pd.DataFrame, curves: dict, rows: np.ndarray, settings: dict) -> dict:
    """rq1.json's body: per kind the mean of each metric over the images where it is defined
    (with the count left out as undefined), and the mean curves and areas of the faithfulness draw."""
    agreement = {}
    for kind in KINDS:
        sub = per_image[per_image["kind"] == kind]
        agreement[kind] = {m: _mean(sub[m].to_numpy()) for m in M.METRICS}
        agreement[kind]["n"] = int(len(sub))
        agreement[kind]["undefined"] = {m: int(sub[m].isna().sum()) for m in M.METRICS}
    steps = int(settings["faithfulness_steps"])
    faith = {"n_images": int(len(rows)), "fractions": [s / steps for s in range(steps + 1)]}
    for mode, by_kind in curves.items():
        faith[mode] = {
            kind: {
                "curve": c.mean(0).tolist(),
                "sem": (c.std(0, ddof=1) / np.sqrt(len(c))).tolist()
                if len(c) > 1
                else [0.0] * len(c[0]),
                "auc": float(FA.curve_auc(c).mean()),
            }
            for kind, c in by_kind.items()
        }
    return {
        "n_annotated": int(per_image["row"].nunique()),
        "agreement": agreement,
        "faithfulness": faith,
    }


def refuse_multiclass(ds: PreparedDataset, spec: C.RunSpec) -> None:
    """One-line ConfigError for a K > 2 dataset: RQ1 is DD's binary question (the true-class CAM
    t against *the* false-class CAM f, DD §3.1, §6.1); with several false classes f is a
    modelling choice (issue 12's `false_class`), so RQ1 is not scored there (docs/decisions.md)."""
    classes = ds.meta.get("classes") or []
    if len(classes) > 2:
        raise ConfigError(
            f"{spec.run_id}: RQ1 (DD §6.1) compares the true- and the false-class CAM of a binary "
            f"model, but dataset {spec.dataset} has {len(classes)} classes; set rq1_fooled: false "
            "on the experiments that train it"
        )


def score_run(cfg: dict, spec: C.RunSpec) -> dict:
    """Score one trained run (its selected model.pt) for RQ1; write rq1.json and rq1_images.csv."""
    from salience.device import pick_device
    from salience.evaluation.evaluate import load_trained
    from salience.models.base import feature_grid, find_backbone

    rdir = C.run_dir(cfg, spec)
    model, method, _ = load_trained(rdir / "model.pt", run=spec)
    model.to(pick_device(cfg["train"]["device"]))
    if not method.cam_head:
        raise ConfigError(
            f"{spec.run_id}: method {spec.method} has no class activation maps; RQ1 scores CAM-head runs "
            f"(e.g. fooling, cyborg)"
        )
    settings = rq1_settings(cfg)
    ds = PreparedDataset(C.prepared_dir(cfg, spec.dataset))
    refuse_multiclass(ds, spec)
    test = ds.rows("test")
    if len(test) == 0:
        raise ConfigError(f"{ds.root}: split 'test' is empty")
    grid = feature_grid(find_backbone(model), ds.image_size)
    bs = int(cfg["train"].get("eval_batch_size") or 128)
    per_image = map_metrics(
        model, method, ds, test, grid, float(settings["nss_top"]), bs, spec.run_id
    )
    rows = pick_rows(ds, "test", int(settings["faithfulness_images"]), int(settings["seed"]))
    curves = faithfulness(model, method, ds, rows, grid, settings)
    for mode, by_kind in curves.items():
        for kind, c in by_kind.items():
            if not np.isfinite(c).all():
                raise DataError(
                    f"{spec.run_id}: the {mode} curve of {kind} has NaN/inf logits; the model diverged"
                )
    auc = pd.DataFrame({"row": rows, "label": ds.index["label"].to_numpy()[rows]})
    for mode, by_kind in curves.items():
        for kind, c in by_kind.items():
            auc[f"{mode}_{kind}"] = FA.curve_auc(c)
    body = {
        "run_id": spec.run_id,
        **{
            k: getattr(spec, k)
            for k in ("dataset", "fold", "backbone", "method", "variant", "seed")
        },
        "settings": settings,
        **summarize_run(per_image, curves, rows, settings),
    }
    _write(rdir, body, per_image, auc)
    return body


def _write(rdir: Path, body: dict, per_image: pd.DataFrame, auc: pd.DataFrame) -> None:
    wide = per_image.copy()
    long_auc = auc.melt(id_vars=["row", "label"], var_name="curve", value_name="auc")
    long_auc[["mode", "kind"]] = long_auc["curve"].str.split("_", n=1, expand=True)
    pivot = long_auc.pivot_table(
        index=["row", "label", "kind"], columns="mode", values="auc"
    ).reset_index()
    pivot.columns = [c if c in ("row", "label", "kind") else f"{c}_auc" for c in pivot.columns]
    wide = wide.merge(pivot, on=["row", "label", "kind"], how="outer").sort_values(["kind", "row"])
    text = json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_paths(rdir / "rq1.json", rdir / "rq1_images.csv") as (tmp_json, tmp_csv):
        tmp_json.write_text(text)
        wide.to_csv(tmp_csv, index=False)
