"""DVC on a fresh git repository holding the working tree, with config/config.yaml replaced by the
tiny CI config and dvc.yaml written from it (`python -m salience dvc-stages`, as after any change of
the config's datasets): `dvc repro` rebuilds the data and the study offline, `dvc metrics show` reads the
summary, and a second `dvc repro` has nothing to do (stable dependency hashes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _support import TEST_CONFIG, copy_repo, dvc, git, run, tool_bin

import salience.config as sc
from salience import study

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("dvc") / "repo")
    shutil.copy2(root / TEST_CONFIG, root / "config" / "config.yaml")
    py = str(tool_bin() / "python")
    run([py, "-m", "salience", "dvc-stages", "--config", "config/config.yaml"], root, timeout=120)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "working tree under test")
    return root


def test_stages_follow_the_config(dvc_repo):
    cfg = study.load_config(dvc_repo / "config" / "config.yaml")
    listed = dvc(dvc_repo, "stage", "list", "--name-only").split()
    expected = [f"{s}@{d}" for s in ("generate", "prepare") for d in cfg["datasets"]] + ["study"]
    assert sorted(listed) == sorted(expected)


def test_repro_prepares_the_data(dvc_repo):
    cfg = study.load_config(dvc_repo / "config" / "config.yaml")
    ds = next(iter(cfg["datasets"]))
    t0 = time.monotonic()
    dvc(dvc_repo, "repro", f"prepare@{ds}")
    print(f"dvc repro prepare@{ds}: {time.monotonic() - t0:.0f} s")
    assert (dvc_repo / sc.prepared_dir(cfg, ds) / "meta.json").is_file()
    assert (dvc_repo / sc.raw_dir(cfg, ds) / "manifest.csv").is_file()
    # generated data are DVC outputs, git-ignored, never git content
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(sc.raw_dir(cfg, ds))], cwd=dvc_repo
    ).returncode
    assert ignored == 0


def test_repro_runs_the_study_and_reports_metrics(dvc_repo):
    t0 = time.monotonic()
    dvc(dvc_repo, "repro")
    print(f"dvc repro (study): {time.monotonic() - t0:.0f} s")
    cfg = study.load_config(dvc_repo / "config" / "config.yaml")
    results = dvc_repo / cfg["results_dir"]
    assert (results / "tables" / "dd_t2.csv").is_file()
    assert (results / "tables" / "sage_t1.tex").is_file()
    assert (results / "report.html").is_file()
    assert (dvc_repo / "dvc.lock").is_file()
    shown = json.loads(dvc(dvc_repo, "metrics", "show", "--json"))
    text = json.dumps(shown)
    assert "summary.json" in text and "error" not in text.lower(), text[:2000]
    # nothing changed: every stage is up to date (no byte code or metadata in the dep hashes)
    status = dvc(dvc_repo, "status")
    assert "up to date" in status.lower(), status
