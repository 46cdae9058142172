"""The generated benchmark: determinism, counts, maps, and the planted shortcut measured on pixels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from _support import csv_dicts, data_cli
from PIL import Image

from salience.data.generate import TASKS, generate, knobs_for
from salience.data.generate.face import SUBSETS as FACE_SUBSETS
from salience.data.generate.iris import SUBSETS as IRIS_SUBSETS
from salience.errors import ConfigError

TINY = {"image_size": 24, "n_train": 14, "n_val": 6, "n_test": 14}


def all_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("task", ["iris", "face", "chest"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, task: str) -> None:
    generate(task, tmp_path / "a", seed=5, **TINY)
    generate(task, tmp_path / "b", seed=5, **TINY)
    generate(task, tmp_path / "c", seed=6, **TINY)
    a, b, c = (all_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert (
        a["manifest.csv"] != c["manifest.csv"]
        or a["images/train/train_00000.png"] != c["images/train/train_00000.png"]
    )
    differing = [k for k in a if k.endswith(".png") and a[k] != c[k]]
    assert len(differing) > 0.9 * sum(k.endswith(".png") for k in a)
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("task", ["iris", "face", "chest"])
def test_counts_splits_labels_subsets_and_maps(tmp_path: Path, task: str) -> None:
    manifest = generate(task, tmp_path / task, seed=1, **TINY)
    rows = csv_dicts(manifest)
    assert list(rows[0].keys()) == ["split", "label", "image", "saliency", "subset"]
    for split, n in (("train", 14), ("val", 6), ("test", 14)):
        sel = [r for r in rows if r["split"] == split]
        assert len(sel) == n
        assert sum(r["label"] == "1" for r in sel) == n // 2
        assert all(r["subset"] == "" for r in sel if r["label"] == "0")
        subs = {r["subset"] for r in sel if r["label"] == "1"}
        if task == "iris":
            assert subs <= set(IRIS_SUBSETS) and (split != "train" or subs == set(IRIS_SUBSETS))
        elif task == "face":
            expected = set(FACE_SUBSETS) if split == "test" else {"stylegan2", "progan"}
            assert subs == expected
        else:
            assert subs == {""}
    for r in rows:  # every row has an RGB image and a greyscale map of the same size
        img = Image.open(manifest.parent / r["image"])
        hmap = Image.open(manifest.parent / r["saliency"])
        assert img.mode == "RGB" and img.size == (24, 24)
        assert hmap.mode == "L" and hmap.size == (24, 24)
        assert np.asarray(hmap).max() == 255
    info = json.loads((manifest.parent / "generator.json").read_text())
    assert info["task"] == task and info["knobs"]["image_size"] == 24


def cue_pixels(tmp_path: Path, task: str, **knobs) -> tuple[list[dict], np.ndarray]:
    """Per row: was a cue drawn, measured as pixels that differ from the cue-free rendering."""
    with_cue = generate(task, tmp_path / "cue", **knobs)
    without = generate(task, tmp_path / "nocue", **{**knobs, "shortcut_contrast": 0.0})
    rows = csv_dicts(with_cue)
    diffs = []
    for r in rows:
        a = np.asarray(Image.open(with_cue.parent / r["image"]), dtype=np.int16)
        b = np.asarray(Image.open(without.parent / r["image"]), dtype=np.int16)
        diffs.append(np.abs(a - b).max(axis=2))
    return rows, np.stack(diffs)


def agreement(rows: list[dict], present: np.ndarray, split: str) -> float:
    sel = [i for i, r in enumerate(rows) if r["split"] == split]
    return float(np.mean([present[i] == (rows[i]["label"] == "1") for i in sel]))


@pytest.mark.parametrize(("task", "kind"), [("chest", "corner"), ("face", "stripes")])
def test_shortcut_goes_with_label_in_train_and_not_in_test(
    tmp_path: Path, task: str, kind: str
) -> None:
    knobs = {"seed": 3, "image_size": 32, "n_train": 80, "n_val": 8, "n_test": 80}
    rows, diff = cue_pixels(tmp_path, task, shortcut_kind=kind, shortcut_strength=0.9, **knobs)
    present = diff.reshape(len(rows), -1).max(axis=1) > 8
    assert agreement(rows, present, "train") >= 0.8
    assert 0.3 <= agreement(rows, present, "test") <= 0.7  # independent of the label at test time
    with open(tmp_path / "cue" / "cues.csv") as fh:
        cues = [int(r["cue"]) for r in csv.DictReader(fh)]
    assert present.tolist() == [bool(c) for c in cues]
    # the cue never touches the salient region (the centre of the image)
    assert diff[:, 12:20, 12:20].max() == 0
    if kind == "corner":
        assert diff[:, 8:24, :].max() == 0 and diff[:, :, 8:24].max() == 0


def test_reversed_test_shortcut_and_oracle_differ_only_in_cues(tmp_path: Path) -> None:
    knobs = {"seed": 4, "image_size": 32, "n_train": 60, "n_val": 8, "n_test": 60}
    rows, diff = cue_pixels(
        tmp_path, "iris", shortcut_strength=0.9, test_shortcut="reversed", **knobs
    )
    present = diff.reshape(len(rows), -1).max(axis=1) > 8
    assert agreement(rows, present, "test") <= 0.2
    # shortcut_strength 0.5 (the oracle) leaves the test split byte-identical (test cue independent)
    a = generate("iris", tmp_path / "p9", shortcut_strength=0.9, **knobs).parent
    b = generate("iris", tmp_path / "p5", shortcut_strength=0.5, **knobs).parent
    test_files = [r["image"] for r in csv_dicts(a / "manifest.csv") if r["split"] == "test"]
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in test_files)


def test_bad_knobs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="train_subsets"):
        knobs_for("face", train_subsets=["dalle"])
    with pytest.raises(ConfigError, match="unknown setting 'noise'"):
        knobs_for("iris", noise=1)
    with pytest.raises(ConfigError, match="shortcut_strength"):
        knobs_for("chest", shortcut_strength=1.5)
    with pytest.raises(ConfigError, match="unknown task"):
        knobs_for("mnist")
    assert set(TASKS) == {"iris", "face", "chest", "gaze3"}


def test_cli_generate_from_config_and_from_task(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "datasets": {
            "irisx": {
                "task": "iris",
                "source": "generated",
                "generator": {"seed": 2, "image_size": 16, "n_train": 8, "n_val": 4, "n_test": 8},
            }
        },
        "experiments": {
            "main": {
                "datasets": ["irisx"],
                "backbones": ["smallcnn"],
                "methods": ["xent"],
                "seeds": [0],
            }
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert data_cli(["generate", "--config", str(path), "--dataset", "irisx"]) == 0
    manifest = tmp_path / "data" / "raw" / "irisx" / "manifest.csv"
    assert str(manifest) in capsys.readouterr().out
    assert len(csv_dicts(manifest)) == 20
    assert data_cli(["generate", "--task", "face", "--out", str(tmp_path / "f"), "--image-size", "16",
                    "--n-train", "8", "--n-val", "4", "--n-test", "12", "--seed", "3"]) == 0  # fmt: skip
    rows = csv_dicts(tmp_path / "f" / "manifest.csv")
    assert {r["subset"] for r in rows if r["split"] == "test"} == {"", *FACE_SUBSETS}
    with pytest.raises(ConfigError, match="--task"):
        data_cli(["generate", "--out", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="not defined"):
        data_cli(["generate", "--config", str(path), "--dataset", "nope"])
