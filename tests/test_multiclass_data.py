"""K-class data (issue 12 §1, §7): manifests labelled with class names or indices, the class list
in the prepared meta.json (K > 2 only), a split that lacks a class, binary data unchanged, and the
generated 3-class task `gaze3` through `python -m salience generate` / `prepare`."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from _support import run_cli
from PIL import Image

from salience.data.generate import generate
from salience.data.prepare import prepare, prepare_from_config
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError, DataError

CLASSES = ["normal", "chf", "pneumonia"]
SIZE = 12


def write_dataset(
    root: Path, labels: dict[str, list[str]], subsets: dict[str, str] | None = None
) -> Path:
    """Real PNGs (random pixels: an image and a map per row) and a manifest; `labels`: split → the
    label cell of each row; `subsets`: label cell → the subset of that class's rows."""
    subsets = subsets or {}
    rows = []
    rng = np.random.default_rng(0)
    for split, cells in labels.items():
        for i, cell in enumerate(cells):
            img, sal = f"images/{split}_{i}.png", f"maps/{split}_{i}.png"
            for rel, shape in ((img, (SIZE, SIZE, 3)), (sal, (SIZE, SIZE))):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / rel)
            rows.append([split, cell, img, sal, subsets.get(cell, "")])
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["split", "label", "image", "saliency", "subset"])
        w.writerows(rows)
    return root / "manifest.csv"


THREE = {
    "train": ["chf", "normal", "pneumonia", "normal", "chf", "pneumonia"],
    "val": ["pneumonia", "chf", "normal"],
    "test": ["normal", "pneumonia", "chf"],
}


def as_indices(labels: dict[str, list[str]]) -> dict[str, list[str]]:
    return {s: [str(CLASSES.index(c)) for c in cells] for s, cells in labels.items()}


def test_three_classes_by_name_and_by_index_prepare_alike(tmp_path: Path) -> None:
    by_name = prepare(write_dataset(tmp_path / "n", THREE), tmp_path / "pn", SIZE, classes=CLASSES)
    by_index = prepare(
        write_dataset(tmp_path / "i", as_indices(THREE)), tmp_path / "pi", SIZE, classes=CLASSES
    )
    for out in (by_name, by_index):
        ds = PreparedDataset(out)
        assert ds.classes == CLASSES and ds.num_classes == 3
        assert json.loads((out / "meta.json").read_text())["classes"] == CLASSES
        assert ds.labels.dtype == np.int64
        assert ds.labels[ds.rows("train")].tolist() == [1, 0, 2, 0, 1, 2]
        assert ds.labels[ds.rows("val")].tolist() == [2, 1, 0]
        assert ds.meta["counts"]["test"]["label"] == {"0": 1, "1": 1, "2": 1}
    a, b = PreparedDataset(by_name), PreparedDataset(by_index)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.maps, b.maps)


def test_label_not_a_declared_class_and_missing_class_are_one_line(tmp_path: Path) -> None:
    bad = {**THREE, "val": ["pneumonia", "chf", "copd"]}
    with pytest.raises(DataError) as exc:
        prepare(write_dataset(tmp_path / "a", bad), tmp_path / "pa", SIZE, classes=CLASSES)
    msg = str(exc.value)
    assert "\n" not in msg and "line 10" in msg and "label 'copd' is none of the 3 classes" in msg
    with pytest.raises(DataError) as exc:  # index 3 is no class of three
        prepare(write_dataset(tmp_path / "b", as_indices(THREE) | {"val": ["2", "1", "3"]}),
                tmp_path / "pb", SIZE, classes=CLASSES)  # fmt: skip
    assert "label '3' is none of the 3 classes" in str(exc.value)
    lacking = {**THREE, "test": ["normal", "chf", "chf"]}
    with pytest.raises(DataError) as exc:
        prepare(write_dataset(tmp_path / "c", lacking), tmp_path / "pc", SIZE, classes=CLASSES)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "split 'test' has no rows of class 'pneumonia' (label 2)" in msg
    assert "add 'pneumonia' rows to 'test'" in msg
    assert not (tmp_path / "pc").exists()
    with pytest.raises(DataError) as exc:  # undeclared names: the message names `classes`
        prepare(write_dataset(tmp_path / "d", THREE), tmp_path / "pd", SIZE)
    assert "outside the two classes 0 and 1" in str(exc.value)
    assert "declare them (`datasets.<name>.classes` in the config, `prepare --classes a,b,c`)" in (
        str(exc.value)
    )
    for classes in (["normal"], ["a", "a", "b"], ["ok", "has space"]):
        with pytest.raises(ConfigError, match="classes"):
            prepare(tmp_path / "n" / "manifest.csv", tmp_path / "pe", SIZE, classes=classes)


def test_subsets_within_a_class_for_leave_one_subset_out(tmp_path: Path) -> None:
    labels = {s: cells + ["pneumonia"] for s, cells in THREE.items()}
    manifest = write_dataset(tmp_path / "s", labels, {"chf": "siteA", "pneumonia": "siteB"})
    ds = PreparedDataset(prepare(manifest, tmp_path / "p", SIZE, classes=CLASSES))
    assert ds.meta["counts"]["train"]["subset"] == {"siteA": {"1": 2}, "siteB": {"2": 3}}
    held = ds.rows("train", exclude_subsets=["siteB"])  # the fold that holds pneumonia's siteB out
    assert sorted(ds.labels[held].tolist()) == [0, 0, 1, 1]
    assert ds.subsets("test") == ["siteA", "siteB"]


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every prepared file; meta.json without its `source` paths and folder name."""
    out = {
        f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
        for f in ("images.npy", "maps.npy", "maps_cam4.npy", "index.csv")
    }
    meta = json.loads((folder / "meta.json").read_text())
    del meta["source"], meta["name"]
    out["meta"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    return out


def test_binary_prepared_data_is_unchanged(tmp_path: Path) -> None:
    """Digests recorded with the code before issue 12 (same generated chest data, same options)."""
    generate("chest", tmp_path / "raw", seed=3, image_size=16, n_train=6, n_val=4, n_test=4)
    out = prepare(tmp_path / "raw" / "manifest.csv", tmp_path / "p", 16, [4])
    assert digest(out) == {
        "images.npy": "ff0512cfae4e9a5ceb09e8be6e245930215f6a7d23a744096a5ad293d3653ee5",
        "maps.npy": "54a1f36e4d8094bab64b0b628928525efc38ee1cd251c93a2c067130bd391f61",
        "maps_cam4.npy": "7172cf7807b83225ed4ed6422ea006c12ba9a60b73bd21a9fb35ab44f767fc88",
        "index.csv": "a9407bbeaa63e84b7f7eaf82e06d41a24765ec9c3ff929ddd24332df0fae0679",
        "meta": "72272aa20b225a11415d4d9b0f5a3443a059cbd782c607eaacbab01ca4f6e423",
    }
    ds = PreparedDataset(out)
    assert "classes" not in ds.meta and ds.classes == ["0", "1"] and ds.num_classes == 2
    ds.check_config("chest", {"image_size": 16, "cam_grids": [4]})


def test_gaze3_generates_and_prepares_through_the_cli(tmp_path: Path) -> None:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "datasets": {
            "gz": {
                "task": "gaze3",
                "source": "generated",
                "image_size": 24,
                "classes": CLASSES,
                "generator": {"seed": 1, "image_size": 24, "n_train": 6, "n_val": 6, "n_test": 6},
            }
        },
        "experiments": {
            "main": {
                "datasets": ["gz"],
                "backbones": ["smallcnn"],
                "methods": ["xent"],
                "seeds": [0],
            }
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_cli(["generate", "--config", str(path), "--dataset", "gz"])
    out = run_cli(["prepare", "--config", str(path), "--dataset", "gz"]).stdout
    prepared = tmp_path / "data" / "prepared" / "gz"
    assert str(prepared) in out
    ds = PreparedDataset(prepared)
    assert ds.classes == CLASSES and ds.num_classes == 3
    for split in ("train", "val", "test"):
        assert sorted(ds.labels[ds.rows(split)].tolist()) == [0, 0, 1, 1, 2, 2]
    ds.check_config("gz", cfg["datasets"]["gz"])
    with pytest.raises(DataError, match=r"prepared with classes \['normal', 'chf', 'pneumonia'\]"):
        ds.check_config("gz", {**cfg["datasets"]["gz"], "classes": ["chf", "normal", "pneumonia"]})
    with pytest.raises(DataError, match="binary"):
        ds.check_config("gz", {k: v for k, v in cfg["datasets"]["gz"].items() if k != "classes"})
    del cfg["datasets"]["gz"]["classes"]  # names without `classes`: the binary one-line error
    path.write_text(yaml.safe_dump(cfg))
    bad = run_cli(["prepare", "--config", str(path), "--dataset", "gz"], check=False)
    assert bad.returncode == 2 and "outside the two classes 0 and 1" in bad.stderr.splitlines()[-1]
    with pytest.raises(DataError):
        prepare_from_config(cfg, "gz")


def test_a_sweep_over_choice_names(tmp_path: Path) -> None:
    """config/multiclass.yaml sweeps `false_class` by name; the mechanism, on a choice setting that
    exists on every branch (cam_class): one variant per name, each run resolved with its value."""
    from salience.study import expand_runs, load_config, resolve_run

    cfg = {
        "data_dir": str(tmp_path / "data"),
        "datasets": {"gz": {"task": "gaze3", "source": "generated", "classes": CLASSES}},
        "experiments": {
            "false_class_difference": {
                "datasets": ["gz"],
                "backbones": ["smallcnn"],
                "methods": ["difference"],
                "seeds": [0],
                "key": "methods.difference.cam_class",
                "label": "difference",
                "values": ["true", "predicted"],
            }
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(path)
    runs = expand_runs(loaded)
    assert [r.variant for r in runs] == ["difference-predicted", "difference-true"]
    assert [resolve_run(loaded, r)["method_params"]["cam_class"] for r in runs] == [
        "predicted",
        "true",
    ]
    cfg["experiments"]["false_class_difference"]["values"] = ["Mean value"]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="values"):
        load_config(path)


def test_fourcol_import_maps_three_class_names_to_indices(tmp_path: Path) -> None:
    """`import fourcol --label-map chf=1 pneumonia=2` (normal is a known name: 0), then
    `prepare --classes`: the same labels as the manifest written with names."""
    from salience.data.importers import import_fourcol

    write_dataset(tmp_path / "d", THREE)  # images + maps; its manifest is replaced below
    with open(tmp_path / "d" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "d" / "four.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([r["split"], r["label"], r["image"], r["saliency"]] for r in rows)
    label_map = {"chf": "1", "pneumonia": "2"}
    out = import_fourcol(tmp_path / "d" / "four.csv", tmp_path / "d" / "m.csv", label_map=label_map)
    ds = PreparedDataset(prepare(out, tmp_path / "p", SIZE, classes=CLASSES))
    assert ds.labels[ds.rows("train")].tolist() == [1, 0, 2, 0, 1, 2]
    with pytest.raises(DataError, match="--label-map chf=x: the target must be a class index"):
        import_fourcol(
            tmp_path / "d" / "four.csv", tmp_path / "d" / "m2.csv", label_map={"chf": "x"}
        )
