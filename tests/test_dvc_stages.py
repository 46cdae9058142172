"""`python -m salience dvc-stages`: dvc.yaml written from a config (docs/data.md section 6). Fast
checks of the written pipeline with real DVC parsing it; the full round trip with a remote is
tests/test_dvc_own_data.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from _support import ROOT, run_cli, tool_bin, workflow_env

MIXED = """\
datasets:
  gen:
    task: iris
    source: generated
    image_size: 32
    generator: {seed: 1, image_size: 32, n_train: 20, n_val: 10, n_test: 10}
  mine:
    task: chest
    source: manifest
    manifest: data/raw/mine/manifest.csv
    image_size: 32
experiments:
  main: {datasets: [gen, mine], backbones: [smallcnn], methods: [xent], seeds: [0]}
"""


def salience(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(list(args), check=False, cwd=cwd, env={"PYTHONPATH": str(ROOT / "src")})


def mixed_repo(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir(parents=True)
    (tmp_path / "config" / "mine.yaml").write_text(MIXED)
    return tmp_path


def test_repository_dvc_yaml_is_written_from_the_demo_config():
    proc = salience(ROOT, "dvc-stages", "--config", "config/config.yaml", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "dvc.yaml matches config/config.yaml" in proc.stdout


@pytest.mark.integration  # ~18 s on the loaded 2-core machine: too heavy for the fast tier
def test_generate_only_for_generated_datasets_and_dvc_reads_it(tmp_path):
    root = mixed_repo(tmp_path)
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 0, proc.stderr
    # warned: the manifest folder is not tracked by DVC yet
    assert "data/raw/mine (dataset mine) is not tracked by DVC: `dvc add data/raw/mine`" in (
        proc.stderr
    )
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert stages["generate"]["foreach"] == ["gen"]
    assert stages["prepare"]["foreach"] == {"gen": "data/raw/gen", "mine": "data/raw/mine"}
    assert stages["study"]["deps"][:2] == ["data/prepared/gen", "data/prepared/mine"]
    # real DVC expands it: no generate stage for the manifest dataset
    env = workflow_env(root, DVC_NO_ANALYTICS="1")
    dvc = str(tool_bin() / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=root, env=env, check=True)
    out = subprocess.run(
        [dvc, "stage", "list", "--name-only"], cwd=root, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["generate@gen", "prepare@gen", "prepare@mine", "study"]
    # tracked once `dvc add`ed: no warning
    (root / "data" / "raw" / "mine").mkdir(parents=True)
    (root / "data" / "raw" / "mine" / "manifest.csv").write_text("split,label,image\n")
    subprocess.run([dvc, "add", "-q", "data/raw/mine"], cwd=root, env=env, check=True)
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 0 and "not tracked" not in proc.stderr


@pytest.mark.integration  # ~15 s on the loaded 2-core machine: too heavy for the fast tier
def test_stale_file_and_foreign_stages_stop_with_one_line(tmp_path):
    root = mixed_repo(tmp_path)
    assert salience(root, "dvc-stages", "--config", "config/mine.yaml").returncode == 0
    cfg = yaml.safe_load(MIXED)
    cfg["datasets"]["more"] = {**cfg["datasets"]["mine"], "manifest": "data/raw/more/manifest.csv"}
    (root / "config" / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml", "--check")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: dvc.yaml does not match config/mine.yaml (stage(s) prepare, study differ: datasets "
        "added, removed or moved?); run `python -m salience dvc-stages --config config/mine.yaml "
        "--cores 2`, then `dvc repro` again"
    )
    # a stage the user added is never overwritten, and nothing is left behind
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    doc["stages"]["my_plots"] = {"cmd": "echo plots"}
    before = yaml.safe_dump(doc)
    (root / "dvc.yaml").write_text(before)
    listing = sorted(os.listdir(root))
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: dvc.yaml holds stages.my_plots, which `dvc-stages` did not write and would "
        "overwrite; move them to a dvc.yaml in a subfolder (or remove them), then run again"
    )
    assert (root / "dvc.yaml").read_text() == before
    assert sorted(os.listdir(root)) == listing


def test_manifest_in_the_repository_root_is_refused(tmp_path):
    root = mixed_repo(tmp_path)
    text = MIXED.replace("data/raw/mine/manifest.csv", "manifest.csv")
    (root / "config" / "mine.yaml").write_text(text)
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: datasets.mine.manifest: manifest.csv lies in the repository root, so DVC would "
        "track the whole repository as its data; move the dataset into its own folder (e.g. "
        "data/raw/mine/manifest.csv)"
    )
    assert not (root / "dvc.yaml").exists()


def test_data_dir_outside_the_repository_is_refused(tmp_path):
    root = mixed_repo(tmp_path / "repo")
    outside = tmp_path / "scratch"
    (root / "config" / "mine.yaml").write_text(f"data_dir: {outside}\n" + MIXED)
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: data_dir: {outside} lies outside the repository ({root}), where DVC cannot keep "
        "stage outputs; use a path inside it (e.g. data_dir: data)"
    )
    assert not (root / "dvc.yaml").exists()


def test_manifest_outside_the_repository_is_a_dependency_with_a_warning(tmp_path):
    root = mixed_repo(tmp_path / "repo")
    lab = tmp_path / "lab" / "mine"
    text = MIXED.replace("data/raw/mine/manifest.csv", f"{lab}/manifest.csv")
    (root / "config" / "mine.yaml").write_text(text)
    proc = salience(root, "dvc-stages", "--config", "config/mine.yaml")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"WARNING salience.dvcstages: {lab} (dataset mine) lies outside the repository: DVC "
        f"hashes it but cannot push or pull it; `dvc import-url {lab} data/raw/mine` and point "
        "the manifest there (docs/data.md, section 6)"
    ) in proc.stderr
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert stages["prepare"]["foreach"]["mine"] == str(lab)
