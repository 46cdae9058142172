"""The generated 3-class chest task (issue 12 §7; data/generate/gaze3.py, task `gaze3`), called
directly: determinism, class balance, maps centred on each finding's region, and the planted
shortcut measured on the written pixels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salience.data.generate import TASKS, gaze3, generate
from salience.errors import ConfigError, DataError

TINY = {"image_size": 24, "n_train": 15, "n_val": 7, "n_test": 12}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def all_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate("gaze3", tmp_path / "a", seed=5, **TINY)
    generate("gaze3", tmp_path / "b", seed=5, **TINY)
    generate("gaze3", tmp_path / "c", seed=6, **TINY)
    a, b, c = (all_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if k.endswith(".png") and a[k] != c[k]]
    assert len(differing) > 0.9 * sum(k.endswith(".png") for k in a)
    assert not list(tmp_path.glob(".tmp-*"))
    # regenerating over its own output is allowed; over a foreign file it is refused, untouched
    generate("gaze3", tmp_path / "a", seed=5, **TINY)
    assert all_bytes(tmp_path / "a") == b
    (tmp_path / "a" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="notes.txt"):
        generate("gaze3", tmp_path / "a", seed=5, **TINY)
    assert (tmp_path / "a" / "notes.txt").read_text() == "mine"


def test_class_names_balance_files_and_not_registered(tmp_path: Path) -> None:
    manifest = generate("gaze3", tmp_path / "g", seed=1, **TINY)
    rows = read_csv(manifest)
    assert list(rows[0].keys()) == ["split", "label", "image", "saliency", "subset"]
    for split, n in (("train", 15), ("val", 7), ("test", 12)):
        labels = [r["label"] for r in rows if r["split"] == split]
        counts = [labels.count(c) for c in ("normal", "chf", "pneumonia")]
        assert sum(counts) == n and max(counts) - min(counts) <= 1 and min(counts) == n // 3
        assert labels != sorted(labels)  # shuffled, not blocks of one class
    assert {r["subset"] for r in rows} == {""}
    for r in rows:
        img = Image.open(manifest.parent / r["image"])
        hmap = Image.open(manifest.parent / r["saliency"])
        assert img.mode == "RGB" and img.size == (24, 24)
        assert hmap.mode == "L" and hmap.size == (24, 24) and np.asarray(hmap).max() == 255
    info = json.loads((manifest.parent / "generator.json").read_text())
    assert info["task"] == "gaze3" and info["classes"] == ["normal", "chf", "pneumonia"]
    assert info["knobs"]["image_size"] == 24
    assert TASKS["gaze3"] is gaze3  # registered: `generate --task gaze3`
    with pytest.raises(ConfigError, match="n_val 3 < 4"):
        gaze3.knobs(n_val=3)
    with pytest.raises(ConfigError, match="unknown setting 'classes'"):
        gaze3.knobs(classes=4)


def centroid(m: np.ndarray) -> tuple[float, float]:
    """(y, distance from the midline) of the cells ≥ 0.8 × max, in fractions of the side."""
    yy, xx = np.nonzero(m >= 0.8 * m.max())
    size = m.shape[0]
    return yy.mean() / size, abs(xx.mean() / size - 0.5)


def test_maps_are_centred_on_each_findings_region(tmp_path: Path) -> None:
    manifest = generate(
        "gaze3",
        tmp_path / "g",
        seed=2,
        image_size=48,
        n_train=90,
        n_val=4,
        n_test=4,
        map_quality=1.0,
    )
    rows = [r for r in read_csv(manifest) if r["split"] == "train"]
    near = {"chf": [], "pneumonia": []}
    closer = {"chf": [], "pneumonia": []}
    for r in rows:
        if r["label"] == "normal":
            continue
        c = np.array(centroid(np.asarray(Image.open(manifest.parent / r["saliency"]), float)))
        own = np.array(gaze3.REGIONS[r["label"]])
        other = np.array(gaze3.REGIONS["chf" if r["label"] == "pneumonia" else "pneumonia"])
        near[r["label"]].append(np.linalg.norm(c - own) < 0.08)
        closer[r["label"]].append(np.linalg.norm(c - own) < np.linalg.norm(c - other))
    for label in near:
        assert len(near[label]) == 30
        assert np.mean(near[label]) >= 0.85, label
        assert np.mean(closer[label]) >= 0.9, label


def cue_diffs(tmp_path: Path, **knobs) -> tuple[list[dict], np.ndarray]:
    """Per row the pixels that differ from the cue-free rendering (the same film)."""
    a = generate("gaze3", tmp_path / "cue", **knobs)
    b = generate("gaze3", tmp_path / "nocue", **{**knobs, "shortcut_contrast": 0.0})
    rows = read_csv(a)
    diffs = []
    for r in rows:
        x = np.asarray(Image.open(a.parent / r["image"]), dtype=np.int16)
        y = np.asarray(Image.open(b.parent / r["image"]), dtype=np.int16)
        diffs.append(np.abs(x - y).max(axis=2))
    return rows, np.stack(diffs)


def test_corner_shortcut_points_at_the_label_in_train_and_not_in_test(tmp_path: Path) -> None:
    knobs = {"seed": 3, "image_size": 32, "n_train": 90, "n_val": 6, "n_test": 90}
    rows, diff = cue_diffs(tmp_path, shortcut_strength=0.9, **knobs)
    h = 32 // 2
    corners = np.stack([diff[:, :h, :h], diff[:, :h, h:], diff[:, h:, :h], diff[:, h:, h:]], 1)
    drawn = corners.reshape(len(rows), 4, -1).max(axis=2) > 8
    assert drawn.sum(axis=1).tolist() == [1] * len(rows)  # exactly one cue on every film
    assert not drawn[:, 3].any()  # bottom-right belongs to no class
    measured = [gaze3.CLASSES[i] for i in drawn.argmax(axis=1)]
    cues = [r["cue"] for r in read_csv(tmp_path / "cue" / "cues.csv")]
    assert measured == cues
    for split, lo, hi in (("train", 0.8, 1.0), ("test", 0.15, 0.55)):
        sel = [i for i, r in enumerate(rows) if r["split"] == split]
        agree = np.mean([measured[i] == rows[i]["label"] for i in sel])
        assert lo <= agree <= hi, (split, agree)
    assert diff[:, 8:24, 8:24].max() == 0  # never in the film's centre


def test_stripes_cue_angle_follows_the_class_and_reversed_test_disagrees(tmp_path: Path) -> None:
    knobs = {"seed": 4, "image_size": 48, "n_train": 24, "n_val": 6, "n_test": 45}
    a = generate("gaze3",
        tmp_path / "cue", shortcut_kind="stripes", shortcut_strength=0.9,
        test_shortcut="reversed", **knobs,
    )  # fmt: skip
    b = generate(
        "gaze3", tmp_path / "nocue", shortcut_kind="stripes", shortcut_contrast=0.0, **knobs
    )
    rows = read_csv(a)
    cues = [r["cue"] for r in read_csv(tmp_path / "cue" / "cues.csv")]
    yy, xx = np.mgrid[0:48, 0:48] + 0.5
    waves = [np.exp(2j * np.pi * (np.cos(t) * yy + np.sin(t) * xx) / 4.0) for t in np.pi / 3 * np.arange(3)]  # fmt: skip
    measured = []
    for r in rows:  # the stripes' angle: the strongest of the three class frequencies (4 px period)
        d = sum(
            np.asarray(Image.open(f.parent / r["image"]), dtype=np.float64)[..., 0] * s
            for f, s in ((a, 1), (b, -1))
        )
        assert np.abs(d[18:30, 18:30]).max() == 0  # never in the film's centre
        measured.append(gaze3.CLASSES[int(np.argmax([abs((d * w).sum()) for w in waves]))])
    assert measured == cues
    test = [i for i, r in enumerate(rows) if r["split"] == "test"]
    assert np.mean([cues[i] == rows[i]["label"] for i in test]) <= 0.25
    train = [i for i, r in enumerate(rows) if r["split"] == "train"]
    assert np.mean([cues[i] == rows[i]["label"] for i in train]) >= 0.75
