"""Leave-one-subset-out folds are checked when the data are prepared (issue 16 §4): a manifest whose
subset column is misnamed (`attack_type`), or that lacks a held-out subset, stops `prepare --config`
with one line and writes nothing; the same data with the column named `subset` prepare and train."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from _support import run_cli
from PIL import Image

SUBSETS = ("printouts", "textured_contacts")


def _dataset(root: Path, subset_column: str = "subset") -> Path:
    """12 real PNG images (live and two attack types in every split) with maps, and a manifest."""
    rng = np.random.default_rng(0)
    rows = [["split", "label", "image", "saliency", subset_column]]
    for split in ("train", "val", "test"):
        for k, (label, subset) in enumerate(((0, ""), (0, ""), (1, SUBSETS[0]), (1, SUBSETS[1]))):
            img = root / "images" / f"{split}{k}.png"
            sal = root / "maps" / f"{split}{k}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            sal.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(img)
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(sal)
            rows.append([split, str(label), f"images/{img.name}", f"maps/{sal.name}", subset])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return manifest


def _config(tmp: Path, manifest: Path, holdout: list[str]) -> Path:
    cfg = {
        "data_dir": str(tmp / "data"),
        "results_dir": str(tmp / "results"),
        "datasets": {
            "mine": {
                "task": "iris",
                "source": "manifest",
                "manifest": str(manifest),
                "image_size": 16,
                "cam_grids": [2],
                "folds": "leave_one_subset_out",
                "holdout_subsets": holdout,
            }
        },
        "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": 8, "threads": 1},
        "model": {"weights": "none"},
        "experiments": {
            "main": {
                "datasets": ["mine"],
                "backbones": ["smallcnn"],
                "methods": ["xent"],
                "seeds": [0],
            }
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _prepare(cfg: Path):
    return run_cli(["prepare", "--config", str(cfg), "--dataset", "mine"], check=False)


def test_misnamed_subset_column_is_an_error_at_prepare(tmp_path):
    manifest = _dataset(tmp_path / "raw", subset_column="attack_type")
    proc = _prepare(_config(tmp_path, manifest, list(SUBSETS)))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {manifest} line 1: no `subset` column (found column(s) attack_type), but dataset "
        f"'mine' uses leave_one_subset_out folds (holdout_subsets: printouts, textured_contacts); "
        f"rename the column that names each image's attack type or generator to `subset`"
    )
    assert not (tmp_path / "data").exists()


def test_held_out_subset_absent_from_manifest_is_an_error_at_prepare(tmp_path):
    manifest = _dataset(tmp_path / "raw")
    proc = _prepare(_config(tmp_path, manifest, ["printouts", "post_mortem"]))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {manifest}: no row has subset 'post_mortem' of datasets.mine.holdout_subsets "
        f"(subsets in the manifest: printouts, textured_contacts); fill the subset column or fix "
        f"holdout_subsets in the config"
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.integration  # ~29 s on the loaded 2-core machine: too heavy for the fast tier
def test_subset_column_prepares_and_trains_the_fold(tmp_path):
    manifest = _dataset(tmp_path / "raw")
    cfg = _config(tmp_path, manifest, ["printouts"])
    proc = _prepare(cfg)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "data" / "prepared" / "mine" / "meta.json").read_text())
    assert set(meta["counts"]["train"]["subset"]) == set(SUBSETS), meta["counts"]
    run = run_cli(
        ["train", "--config", str(cfg), "--run-id", "mine/printouts/smallcnn/xent/base/seed0"]
        + ["--no-mlflow"]
    )
    assert "trained mine/printouts/smallcnn/xent/base/seed0" in run.stdout
