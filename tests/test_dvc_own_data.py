"""Your own data under DVC, as docs/data.md section 6 tells a user to do it.

Alice holds a manifest dataset (real PNG images and maps written here): she `dvc add`s the raw
folder, writes dvc.yaml from her config with `python -m salience dvc-stages`, pushes the raw data to
a DVC remote (a local folder, as a shared file system would be) and runs `dvc repro`. Bob clones her
git repository, `dvc pull`s the raw data and runs `dvc repro`: his prepared arrays are bit-identical
to hers (file hashes, meta.json, DVC's own lock entry) and so are the tables. Real git, real DVC,
real Snakemake; the study is tiny (smallcnn, 1 epoch, 1 seed, 1 method, 32 px)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from _support import copy_repo, dvc, git, run, tool_bin
from PIL import Image

pytestmark = pytest.mark.integration

OWN_CONFIG = """\
# A manifest dataset tracked by DVC (data/raw/mine.dvc), tiny study.
data_dir: data
results_dir: results
tracking_uri: null
datasets:
  mine:
    task: chest
    source: manifest
    manifest: data/raw/mine/manifest.csv
    image_size: 32
    cam_grids: [4]
train: {epochs: 1, batch_size: 20, eval_batch_size: 64, lr: 0.01, device: cpu, threads: 1}
model: {cam_layer: pooled, weights: none}
experiments:
  main: {datasets: [mine], backbones: [smallcnn], methods: [cyborg], seeds: [0]}
report: {visualize_samples: 2}
"""


def salience(root: Path, *args: str) -> str:
    proc = run([str(tool_bin() / "python"), "-m", "salience", *args], root, timeout=120)
    return proc.stdout + proc.stderr


def write_own_dataset(folder: Path, seed: int = 7) -> None:
    """A small chest-like dataset as a user would hold it: 32×32 RGB PNGs, a bright patch on the
    abnormal (label 1) images, 8-bit greyscale PNG maps marking the patch, and manifest.csv."""
    rng = np.random.default_rng(seed)
    rows = ["split,label,image,saliency,subset"]
    for split, n in (("train", 40), ("val", 16), ("test", 20)):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "maps" / split).mkdir(parents=True)
        for i in range(n):
            label = i % 2
            img = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
            hmap = np.zeros((32, 32), np.uint8)
            r, c = rng.integers(4, 20, 2)
            hmap[r : r + 8, c : c + 8] = 255
            if label:
                img[r : r + 8, c : c + 8] = 230
            name = f"{split}_{i:03d}.png"
            Image.fromarray(img).save(folder / "images" / split / name)
            Image.fromarray(hmap).save(folder / "maps" / split / name)
            rows.append(f"{split},{label},images/{split}/{name},maps/{split}/{name},")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")


def sha256_tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def lock_entry(root: Path, stage: str) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> Path:
    """Alice's repository: this working tree, her dataset `dvc add`-ed and pushed, her dvc.yaml
    written from config/mine.yaml, all committed, and the study reproduced once."""
    base = tmp_path_factory.mktemp("own-data")
    root = copy_repo(base / "alice")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "working tree under test")

    write_own_dataset(root / "data" / "raw" / "mine")
    (root / "config" / "mine.yaml").write_text(OWN_CONFIG)
    salience(root, "dvc-stages", "--config", "config/mine.yaml")
    dvc(root, "add", "data/raw/mine")
    dvc(root, "remote", "add", "-d", "shared", str(base / "remote"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "my dataset, tracked by DVC")
    dvc(root, "push")
    t0 = time.monotonic()
    dvc(root, "repro")
    print(f"alice: dvc repro: {time.monotonic() - t0:.0f} s")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "study reproduced")
    return root


def test_raw_data_is_dvc_tracked_not_git(alice):
    tracked = git(alice, "ls-files").split()
    assert "data/raw/mine.dvc" in tracked and "config/mine.yaml" in tracked
    assert not [f for f in tracked if f.startswith("data/raw/mine/")]
    outputs = [f for f in tracked if f.startswith(("data/prepared/", "results/"))]
    assert outputs == ["results/README.md"]  # the layout's README only (issue 11.8)
    listed = dvc(alice, "stage", "list", "--name-only").split()
    assert sorted(listed) == ["prepare@mine", "study"]  # no generate stage for own data
    assert lock_entry(alice, "prepare@mine")["deps"][0]["path"] == "data/raw/mine"
    assert "up to date" in dvc(alice, "status").lower()
    # the remote holds the raw data (a local folder, as a shared file system would)
    assert "in sync" in dvc(alice, "status", "--cloud", "data/raw/mine.dvc")


def test_fresh_clone_pulls_and_reproduces_bit_identically(alice, tmp_path):
    bob = tmp_path / "bob"
    run(["git", "clone", "-q", str(alice), str(bob)], tmp_path, timeout=60)
    assert not (bob / "data" / "raw" / "mine").exists()
    # the remote has the raw data only (what Alice pushed); outputs are rebuilt, not downloaded
    dvc(bob, "pull", "--allow-missing")
    assert sha256_tree(bob / "data/raw/mine") == sha256_tree(alice / "data/raw/mine")
    assert not (bob / "data" / "prepared" / "mine").exists()
    t0 = time.monotonic()
    dvc(bob, "repro")
    print(f"bob: dvc repro: {time.monotonic() - t0:.0f} s")

    prepared_a, prepared_b = alice / "data/prepared/mine", bob / "data/prepared/mine"
    hashes = sha256_tree(prepared_b)
    assert {"images.npy", "maps.npy", "maps_cam4.npy", "meta.json", "index.csv"} <= set(hashes)
    assert hashes == sha256_tree(prepared_a)
    assert (prepared_b / "meta.json").read_text() == (prepared_a / "meta.json").read_text()
    assert lock_entry(bob, "prepare@mine") == lock_entry(alice, "prepare@mine")
    tables = sha256_tree(bob / "results/tables")
    assert any(name.endswith(".csv") for name in tables)
    assert tables == sha256_tree(alice / "results/tables")
    assert "up to date" in dvc(bob, "status").lower()


def test_imported_data_are_prepared_the_same_way(tmp_path):
    """Data that live elsewhere come in with `dvc import-url` (here a lab's folder outside the
    repository) instead of `dvc add`; the pipeline is the same."""
    root = copy_repo(tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    write_own_dataset(tmp_path / "lab" / "mine")
    (root / "data" / "raw").mkdir(parents=True)  # DVC makes no parent folders
    dvc(root, "import-url", str(tmp_path / "lab" / "mine"), "data/raw/mine")
    assert (root / "data/raw/mine.dvc").is_file()
    (root / "config" / "mine.yaml").write_text(OWN_CONFIG)
    assert "not tracked" not in salience(root, "dvc-stages", "--config", "config/mine.yaml")
    dvc(root, "repro", "prepare@mine")
    prepared = root / "data/prepared/mine"
    assert sha256_tree(root / "data/raw/mine") == sha256_tree(tmp_path / "lab" / "mine")
    assert yaml.safe_load((prepared / "meta.json").read_text())["n"] == 76
    assert "up to date" in dvc(root, "status", "prepare@mine").lower()
