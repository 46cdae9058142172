"""Helpers shared by the engine tests: a tiny generated + prepared dataset and a matching config.

Real components only: PNGs are generated and prepared by the package itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from salience.study import validate

ROOT = Path(__file__).resolve().parents[1]
TINY_GEN = {"seed": 5, "image_size": 32, "n_train": 48, "n_val": 24, "n_test": 32}


def tiny_config(
    tmp: Path,
    *,
    methods: list[str] | None = None,
    epochs: int = 2,
    task: str = "chest",
    extra: dict | None = None,
    **train,
) -> dict:
    """A validated config with one tiny generated dataset `tiny` under tmp/data, results under tmp/results."""
    ds = {
        "task": task,
        "source": "generated",
        "image_size": 32,
        "cam_grids": [4],
        "generator": dict(TINY_GEN),
    }
    if task == "iris":
        ds.update(folds="leave_one_subset_out", holdout_subsets=["printouts"])
    cfg = {
        "data_dir": str(tmp / "data"),
        "results_dir": str(tmp / "results"),
        "datasets": {"tiny": ds},
        "train": {
            "epochs": epochs,
            "batch_size": 8,
            "eval_batch_size": 16,
            "lr": 0.01,
            "threads": 1,
            **train,
        },
        "model": {"weights": "none"},
        "experiments": {
            "main": {
                "datasets": ["tiny"],
                "backbones": ["smallcnn"],
                "methods": methods or ["xent"],
                "seeds": [0],
            }
        },
        **(extra or {}),
    }
    return validate(cfg)


def prepare_tiny(cfg: dict, dataset: str = "tiny") -> Path:
    """Generate and prepare `dataset` through the CLI (the path users take)."""
    from salience.config import prepared_dir

    cfg_path = write_config(cfg)
    for cmd in ("generate", "prepare"):
        run_cli([cmd, "--config", str(cfg_path), "--dataset", dataset])
    return prepared_dir(cfg, dataset)


def write_config(cfg: dict) -> Path:
    import yaml

    path = Path(cfg["results_dir"]).parent / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cli(
    args: list[str], check: bool = True, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "salience", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"salience {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def rows_of(ds: Path) -> list[list[str]]:
    """The rows of `ds`/manifest.csv (header included)."""
    import csv

    with open(ds / "manifest.csv", newline="") as fh:
        return list(csv.reader(fh))


def write_rows(ds: Path, rows: list[list[str]]) -> None:
    """Write `rows` as `ds`/manifest.csv."""
    import csv

    with open(ds / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def compile_latex(body: str, folder: Path) -> Path:
    """Compile `body` (booktabs tables) in an article with pdflatex; returns the PDF. A missing
    pdflatex fails the test with how to install it (.ci/sysdeps.sh)."""
    import shutil

    import pytest

    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex not found: run `bash .ci/sysdeps.sh` (or `make sysdeps`) as root")
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
    (folder / "t.tex").write_text(doc + body + "\n\\end{document}\n")
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout[-2000:]
    return folder / "t.pdf"
