"""The false_class table of multi-class studies (issue 12, reporting/multiclass.py): from run
folders through `aggregate` and `tables`, as the workflow runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _support import run_cli
from scipy import stats

from salience.reporting import aggregate as A

CLASSES = ["normal", "chf", "pneumonia"]
#: (method, variant, false_class) → macro AUROC of seeds 0, 1, 2
RUNS = {
    ("difference", "base", "strongest"): [0.70, 0.74, 0.72],
    ("difference", "difference-strongest", "strongest"): [0.70, 0.74, 0.72],  # same as base
    ("difference", "difference-mean", "mean"): [0.66, 0.69, 0.70],
    ("difference", "difference-pairwise", "pairwise"): [0.75, 0.73, 0.78],
    ("contrast", "base", "strongest"): [0.61, 0.65, 0.60],
    ("contrast", "contrast-mean", "mean"): [0.62, 0.66, 0.64],
    ("xent", "base", None): [0.68, 0.70, 0.69],  # no false_class: not in the table
    ("difference", "alpha-0.3", "strongest"): [0.10, 0.10, 0.10],  # another sweep: left out
}


def write_run(root: Path, method: str, variant: str, fc: str | None, seed: int, v: float) -> str:
    run_id = f"gaze3/all/smallcnn/{method}/{variant}/seed{seed}"
    d = root / run_id
    d.mkdir(parents=True)
    params = {"alpha": 0.5} | ({"false_class": fc} if fc else {})
    meta = {"run_id": run_id, "dataset": "gaze3", "task": "gaze3", "fold": "all"}
    meta |= {"backbone": "smallcnn", "method": method, "variant": variant, "seed": seed}
    (d / "run.json").write_text(json.dumps(meta | {"method_params": params}))
    n = {"all": {"neg": 20, "pos": 40, "classes": dict.fromkeys(CLASSES, 20)}}
    metrics = {"auroc": {"all": v}, "auroc_sigmoid": {"all": v}, "n": n, "classes": CLASSES}
    metrics |= {"best_epoch": 2, "epochs": 2, "constant_scores": False, "cam_agreement": 0.1}
    (d / "metrics.json").write_text(json.dumps(metrics))
    write_scores(d, len(CLASSES))
    return run_id


def write_scores(d: Path, k: int) -> None:
    """A scores.csv with k logit columns (the aggregate reads its header; binary: the ROC)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, k))
    head = ["split", "subset", "label", *[f"logit{i}" for i in range(k)]]
    lines = [",".join(head)] + [
        ",".join(["test", "", str(i % k), *map(str, row)]) for i, row in enumerate(logits)
    ]
    (d / "scores.csv").write_text("\n".join(lines) + "\n")


def tables_of(tmp: Path, runs: dict) -> Path:
    ids = [
        write_run(tmp / "runs", m, var, fc, seed, v)
        for (m, var, fc), values in runs.items()
        for seed, v in enumerate(values)
    ]
    (tmp / "list.txt").write_text("\n".join(ids) + "\n")
    args = ["aggregate", "--runs-root", str(tmp / "runs"), "--run-list", str(tmp / "list.txt")]
    run_cli([*args, "--out-runs", str(tmp / "runs.csv"), "--out-roc", str(tmp / "roc.csv")])
    run_cli(["tables", "--runs", str(tmp / "runs.csv"), "--out-dir", str(tmp / "tables")])
    return tmp / "tables"


def test_false_class_table_means_and_paired_tests_against_strongest(tmp_path):
    out = tables_of(tmp_path, RUNS)
    t = pd.read_csv(out / "false_class.csv")
    cells = t[t["kind"] == "aggregate"].set_index(["row", "col"])
    assert sorted(cells.index) == sorted(
        [(c, "difference") for c in ("strongest", "mean", "pairwise")]
        + [(c, "contrast") for c in ("strongest", "mean")]
    )
    for (method, variant, fc), values in RUNS.items():
        if (fc, method) in cells.index and not variant.startswith("alpha"):  # alpha: left out
            assert cells.loc[(fc, method), "mean"] == pytest.approx(np.mean(values))
            assert cells.loc[(fc, method), "n_seeds"] == 3
    p = stats.ttest_rel(RUNS[("difference", "difference-pairwise", "pairwise")], [0.70, 0.74, 0.72])
    assert cells.loc[("pairwise", "difference"), "p_vs_baseline"] == pytest.approx(p.pvalue)
    assert np.isnan(cells.loc[("strongest", "difference"), "p_vs_baseline"])
    tex = (out / "false_class.tex").read_text()
    assert "macro one-vs-rest" in tex and "against \\texttt{strongest}" in tex
    runs = A.read_runs_csv(tmp_path / "runs.csv")
    assert runs.columns[-2:].tolist() == ["num_classes", "false_class"]


def test_binary_studies_get_no_false_class_table_and_keep_their_columns(tmp_path):
    ids = [write_run(tmp_path / "runs", "difference", "base", "strongest", s, 0.7) for s in (0, 1)]
    for run_id in ids:  # binary runs: metrics.json without classes
        path = tmp_path / "runs" / run_id / "metrics.json"
        m = json.loads(path.read_text())
        m.pop("classes")
        m["n"] = {"all": {"neg": 20, "pos": 20}}
        path.write_text(json.dumps(m))
        write_scores(path.parent, 2)
    (tmp_path / "list.txt").write_text("\n".join(ids) + "\n")
    args = ["aggregate", "--runs-root", str(tmp_path / "runs"), "--run-list"]
    args += [str(tmp_path / "list.txt"), "--out-runs", str(tmp_path / "runs.csv")]
    run_cli([*args, "--out-roc", str(tmp_path / "roc.csv")])
    header = (tmp_path / "runs.csv").read_text().splitlines()[0].split(",")
    assert header == A.RUN_COLUMNS
    run_cli(["tables", "--runs", str(tmp_path / "runs.csv"), "--out-dir", str(tmp_path / "t")])
    assert not (tmp_path / "t" / "false_class.csv").exists()
