"""Run directories → tidy DataFrames (one row per run and test subset; ROC points).

Input contract (written by evaluation): `results/runs/<run_id>/{run.json, metrics.json, scores.csv}`.
Per-subset AUROC = label-0 test rows (shared real / bona fide images) vs the label-1 rows of that
subset; subset "all" = every test row. Any missing key, unreadable file or non-finite AUROC raises a
one-line `SalienceError` naming the file: a table must never average over a silently dropped run.

Multi-class runs (K > 2, issue 12): metrics.json's `auroc` is the macro one-vs-rest AUROC, taken as
is; runs.csv then gains two last columns, `num_classes` and `false_class` (absent while every run is binary, so binary
studies keep their runs.csv byte for byte), and roc.csv holds no curve of theirs: the binary margin
l₁ − l₀ does not rank a K-class model (`figure_reasons` says so in the report).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from salience.errors import SalienceError

RUN_KEYS = ("run_id", "dataset", "task", "fold", "backbone", "method", "variant", "seed")
RUN_COLUMNS = [
    *RUN_KEYS,
    "subset",
    "auroc",
    "auroc_sigmoid",
    "n_pos",
    "n_neg",
    "cam_agreement",
    "best_epoch",
    "epochs",
    "weights_origin",
    "cam_class",
    "cam_layer",
    "constant_scores",
    "test_maps",  # GazeGNN: "provided" (the test images' own maps) or "uniform"; "" otherwise
]
ROC_COLUMNS = [
    "run_id",
    "dataset",
    "fold",
    "backbone",
    "method",
    "variant",
    "seed",
    "subset",
    "fpr",
    "tpr",
]
STR_COLUMNS = ["run_id", "dataset", "task", "fold", "backbone", "method", "variant", "subset"]
STR_COLUMNS += ["cam_class", "cam_layer", "test_maps"]
#: appended to runs.csv only when a run is multi-class (binary studies keep their runs.csv)
MULTICLASS_COLUMNS = ["num_classes", "false_class"]
SCORE_COLUMNS = ("split", "subset", "label", "logit0", "logit1")


def _load_json(path: Path) -> dict:
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except FileNotFoundError:
        raise SalienceError(f"{path}: missing (the run has not been evaluated)") from None
    except (OSError, ValueError) as exc:
        raise SalienceError(f"{path}: unreadable JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise SalienceError(f"{path}: expected a JSON object")
    return obj


def _finite(value: object, path: Path, what: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SalienceError(f"{path}: {what} is {value!r}, not a number") from None
    if not math.isfinite(v):
        raise SalienceError(
            f"{path}: {what} is {v} (undefined AUROC: a subset without both classes?)"
        )
    return v


def read_run_meta(run_dir: str | os.PathLike) -> dict:
    """run.json of one run, checked for the keys every table groups by."""
    path = Path(run_dir) / "run.json"
    meta = _load_json(path)
    missing = [k for k in RUN_KEYS if k not in meta]
    if missing:
        raise SalienceError(f"{path}: missing key(s) {', '.join(missing)}")
    try:
        meta["seed"] = int(meta["seed"])
    except (TypeError, ValueError):
        raise SalienceError(f"{path}: seed {meta['seed']!r} is not an integer") from None
    return meta


def _run_rows(run_dir: Path) -> list[dict]:
    """The runs.csv rows of one run (one per subset), each with the MULTICLASS_COLUMNS too
    (`collect_runs` keeps them only when some run is multi-class); reads each file once."""
    meta = read_run_meta(run_dir)
    path = run_dir / "metrics.json"
    m = _load_json(path)
    for key in ("auroc", "auroc_sigmoid", "n"):
        if not isinstance(m.get(key), dict) or not m[key]:
            raise SalienceError(f"{path}: missing or empty {key!r} block")
    if "all" not in m["auroc"]:
        raise SalienceError(f"{path}: auroc has no 'all' entry")
    cam = m.get("cam_agreement")
    cam = math.nan if cam is None else _finite(cam, path, "cam_agreement")
    params = meta.get("method_params") or {}
    rows = []
    for subset, value in m["auroc"].items():
        if subset not in m["auroc_sigmoid"] or subset not in m["n"]:
            raise SalienceError(f"{path}: subset {subset!r} lacks auroc_sigmoid or n")
        n = m["n"][subset]
        if not isinstance(n, dict) or "pos" not in n or "neg" not in n:
            raise SalienceError(f"{path}: n[{subset!r}] must be {{'pos': int, 'neg': int}}")
        rows.append(
            {
                **{k: meta[k] for k in RUN_KEYS},
                "subset": str(subset),
                "auroc": _finite(value, path, f"auroc[{subset!r}]"),
                "auroc_sigmoid": _finite(
                    m["auroc_sigmoid"][subset], path, f"auroc_sigmoid[{subset!r}]"
                ),
                "n_pos": int(n["pos"]),
                "n_neg": int(n["neg"]),
                "cam_agreement": cam,
                "best_epoch": int(m.get("best_epoch", -1)),
                "epochs": int(m.get("epochs", -1)),
                "weights_origin": str(meta.get("weights_origin", "")),
                # CAM methods: whose class CAM the loss reads (CYBORG differs between SAGE and DD)
                "cam_class": str(params.get("cam_class", "")),
                # the layer the CAM losses read (model.cam_layer); only meaningful with a cam_class
                "cam_layer": str(meta.get("cam_layer", "")),
                # every test (or selected-epoch validation) image scored the same: tables mark it
                "constant_scores": bool(m.get("constant_scores", False)),
                "test_maps": str(m.get("test_maps", "")),
                "num_classes": _num_classes(m, path),
                "false_class": str(params.get("false_class", "")),  # K > 2: the DD switch
            }
        )
    return rows


def _num_classes(m: dict, path: Path) -> int:
    """K of a run's metrics.json: len(`classes`) for a multi-class run, else 2."""
    classes = m.get("classes", ["0", "1"])
    if not isinstance(classes, list) or len(classes) < 2:
        raise SalienceError(f"{path}: classes must be a list of at least two class names")
    return len(classes)


def collect_runs(run_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Tidy frame, one row per (run, subset); subset "all" is the whole test set. With any
    multi-class run, two last columns: `num_classes` (K per run) and `false_class` (the DD
    methods' K-class switch from run.json, "" for other methods); both are absent when every run
    is binary."""
    rows = []
    for d in run_dirs:
        rows += _run_rows(Path(d))
    wide = any(r["num_classes"] > 2 for r in rows)
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *MULTICLASS_COLUMNS] if wide else RUN_COLUMNS)
    strings = [*STR_COLUMNS, "false_class"] if wide else STR_COLUMNS
    return df.astype({c: str for c in strings}).astype({"seed": int})


def num_classes(runs: pd.DataFrame) -> pd.Series:
    """K per row of a runs frame (2 where runs.csv has no `num_classes` column)."""
    if "num_classes" not in runs.columns:
        return pd.Series(2, index=runs.index)
    return runs["num_classes"].astype(int)


def multiclass_datasets(runs: pd.DataFrame) -> list[str]:
    """Datasets whose runs have K > 2 classes (their AUROC cells are macro one-vs-rest)."""
    return sorted(set(runs.loc[num_classes(runs) > 2, "dataset"]))


def scores_classes(run_dir: str | os.PathLike) -> int:
    """K of a run's scores.csv: its number of logit columns (header only)."""
    path = Path(run_dir) / "scores.csv"
    try:
        header = pd.read_csv(path, nrows=0).columns
    except FileNotFoundError:
        raise SalienceError(f"{path}: missing (the run has not been evaluated)") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SalienceError(f"{path}: unreadable CSV ({type(exc).__name__})") from None
    return sum(1 for c in header if c.startswith("logit") and c[5:].isdigit())


def _downsample(fpr: np.ndarray, tpr: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(fpr) <= max_points:
        return fpr, tpr
    idx = np.unique(np.linspace(0, len(fpr) - 1, max(2, max_points)).round().astype(int))
    return fpr[idx], tpr[idx]


def read_scores(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Test rows of scores.csv with finite logits, and `margin` = l₁ − l₀ in float64 (the ranking
    score of p1 that does not saturate; evaluation/metrics.py)."""
    path = Path(run_dir) / "scores.csv"
    try:
        df = pd.read_csv(path, dtype={"subset": str, "split": str}, keep_default_na=False)
    except FileNotFoundError:
        raise SalienceError(f"{path}: missing (the run has not been evaluated)") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SalienceError(f"{path}: unreadable CSV ({type(exc).__name__})") from None
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise SalienceError(f"{path}: missing column(s) {', '.join(missing)}")
    if "logit2" in df.columns:  # a K-class run: l₁ − l₀ ranks nothing there
        raise SalienceError(
            f"{path}: scores of a multi-class model (logit0…logit2…); the logit margin l1 - l0 "
            "is defined for binary runs only"
        )
    df = df[df["split"] == "test"]
    logits = df[["logit0", "logit1"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if df.empty or not np.isfinite(logits).all():
        raise SalienceError(f"{path}: no test rows, or a non-finite logit")
    return df.assign(margin=logits[:, 1] - logits[:, 0], label=df["label"].astype(int))


def collect_roc(run_dirs: Iterable[str | os.PathLike], max_points: int = 200) -> pd.DataFrame:
    """ROC points per (run, subset), from scores.csv with sklearn's roc_curve on the logit margin
    (p1's ranking, without float32 saturation), downsampled. Multi-class runs have no binary
    curve and are left out (`figures.figure_reasons` names them)."""
    frames = []
    for d in run_dirs:
        if scores_classes(d) > 2:
            continue
        meta = read_run_meta(d)
        scores = read_scores(d)
        neg = scores[scores["label"] == 0]
        pos = scores[scores["label"] == 1]
        subsets = ["all", *sorted(s for s in pos["subset"].unique() if s not in ("", "all"))]
        for subset in subsets:
            p = pos if subset == "all" else pos[pos["subset"] == subset]
            if p.empty or neg.empty:
                raise SalienceError(f"{Path(d) / 'scores.csv'}: subset {subset!r} lacks a class")
            y = np.r_[np.zeros(len(neg)), np.ones(len(p))]
            fpr, tpr, _ = roc_curve(y, np.r_[neg["margin"].to_numpy(), p["margin"].to_numpy()])
            fpr, tpr = _downsample(fpr, tpr, max_points)
            frames.append(
                pd.DataFrame(
                    {
                        **{k: meta[k] for k in ROC_COLUMNS[:7]},
                        "subset": subset,
                        "fpr": fpr,
                        "tpr": tpr,
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=ROC_COLUMNS)
    return pd.concat(frames, ignore_index=True)[ROC_COLUMNS]


def find_run_dirs(
    runs_root: str | os.PathLike, run_list: str | os.PathLike | None = None
) -> list[Path]:
    """Run directories: those named in `run_list` (one per line, relative to runs_root or absolute),
    else every directory under runs_root that holds a metrics.json."""
    root = Path(runs_root)
    if run_list is not None:
        lines = Path(run_list).read_text().splitlines()
        dirs = [root / s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
        for d in dirs:
            if not (d / "metrics.json").is_file():
                raise SalienceError(f"{d / 'metrics.json'}: missing (listed in {run_list})")
        return dirs
    if not root.is_dir():
        raise SalienceError(f"{root}: runs root does not exist")
    return sorted(p.parent for p in root.rglob("metrics.json"))


def _read_csv(path: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={c: str for c in STR_COLUMNS}, keep_default_na=False)
    except FileNotFoundError:
        raise SalienceError(f"{path}: missing") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SalienceError(f"{path}: unreadable CSV ({type(exc).__name__})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SalienceError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def read_runs_csv(path: str | os.PathLike) -> pd.DataFrame:
    """runs.csv written by `aggregate`, with numeric columns restored (empty cam_agreement → NaN)."""
    df = _read_csv(path, RUN_COLUMNS)
    if "false_class" in df.columns:
        df["false_class"] = df["false_class"].fillna("").astype(str)
    if "num_classes" in df.columns:
        df["num_classes"] = pd.to_numeric(df["num_classes"], errors="coerce")
        if not df["num_classes"].ge(2).all():
            raise SalienceError(f"{path}: num_classes must be an integer ≥ 2 on every row")
    for c in ("auroc", "auroc_sigmoid", "cam_agreement"):
        df[c] = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
    if not np.isfinite(df[["auroc", "auroc_sigmoid"]].to_numpy(dtype=float)).all():
        raise SalienceError(f"{path}: a non-numeric or NaN AUROC")
    flag = df["constant_scores"].astype(str).str.lower()
    if not flag.isin(["true", "false"]).all():
        raise SalienceError(f"{path}: constant_scores must be True or False")
    return df.assign(constant_scores=flag == "true").astype(
        {"seed": int, "n_pos": int, "n_neg": int}
    )


def read_roc_csv(path: str | os.PathLike) -> pd.DataFrame:
    df = _read_csv(path, ROC_COLUMNS)
    return df.astype({"seed": int, "fpr": float, "tpr": float})
