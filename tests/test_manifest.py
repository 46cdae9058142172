"""Manifest checks that need no decoding (paths, labels, duplicates, splits) and the two importers.

Every case is built with real files; after an error no output folder and no temporary folder is
left behind.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _support import data_cli, prepare_fails, rows_of, write_rows
from PIL import Image

from salience.data.generate import generate
from salience.data.manifest import read_manifest
from salience.data.prepare import prepare
from salience.data.prepared import PreparedDataset
from salience.errors import DataError


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base") / "ds"
    generate("iris", root, seed=0, image_size=16, n_train=8, n_val=4, n_test=8)
    return root


def test_good_manifest_reads(ds: Path) -> None:
    rows = read_manifest(ds / "manifest.csv")
    assert len(rows) == 20 and rows[0].line == 2
    assert {r.split for r in rows} == {"train", "val", "test"}
    assert all(r.saliency_path is not None and r.saliency_path.is_file() for r in rows)


def test_missing_image(ds: Path) -> None:
    rows = rows_of(ds)
    (ds / rows[3][2]).unlink()
    prepare_fails(ds, "line 4", rows[3][2], "missing image file", "fix the path or remove the row")


def test_missing_map_file(ds: Path) -> None:
    rows = rows_of(ds)
    (ds / rows[2][3]).unlink()
    prepare_fails(ds, "line 3", rows[2][3], "unreadable saliency map", "empty the saliency cell")


def test_label_outside_two_classes(ds: Path) -> None:
    rows = rows_of(ds)
    rows[5][1] = "2"
    write_rows(ds, rows)
    prepare_fails(ds, "line 6", rows[5][2], "label '2'", "outside the two classes", "--label-map")


def test_duplicate_image_path(ds: Path) -> None:
    rows = rows_of(ds)
    rows[6][2] = rows[1][2]
    write_rows(ds, rows)
    prepare_fails(
        ds, "line 7", rows[1][2], "duplicate image path (also on line 2)", "remove one of the rows"
    )


def test_dotdot_escape(ds: Path) -> None:
    shutil.copy(ds / rows_of(ds)[1][2], ds.parent / "x.png")
    rows = rows_of(ds)
    rows[2][2] = "../x.png"
    write_rows(ds, rows)
    prepare_fails(ds, "line 3", "../x.png", "escapes the dataset folder", "move the file inside")


def test_absolute_path_elsewhere(ds: Path) -> None:
    outside = ds.parent / "x.png"
    shutil.copy(ds / rows_of(ds)[1][2], outside)
    rows = rows_of(ds)
    rows[2][2] = str(outside)
    write_rows(ds, rows)
    prepare_fails(ds, "line 3", str(outside), "absolute path outside the dataset folder")


def test_absolute_path_inside_is_made_relative(ds: Path) -> None:
    rows = rows_of(ds)
    rel = rows[2][2]
    rows[2][2] = str((ds / rel).resolve())
    write_rows(ds, rows)
    assert read_manifest(ds / "manifest.csv")[1].image == rel


def test_symlink_pointing_outside(ds: Path) -> None:
    outside = ds.parent / "x.png"
    shutil.copy(ds / rows_of(ds)[1][2], outside)
    os.symlink(outside, ds / "images" / "link.png")
    rows = rows_of(ds)
    rows[2][2] = "images/link.png"
    write_rows(ds, rows)
    prepare_fails(ds, "line 3", "images/link.png", "symlink pointing outside the dataset folder")


def test_symlink_inside_is_fine(ds: Path) -> None:
    rows = rows_of(ds)
    os.symlink(ds / rows[2][2], ds / "images" / "link.png")
    rows[2][2] = "images/link.png"
    write_rows(ds, rows)
    assert read_manifest(ds / "manifest.csv")[1].image == "images/link.png"


def test_symlinked_map_pointing_outside(ds: Path) -> None:
    outside = ds.parent / "m.png"
    shutil.copy(ds / rows_of(ds)[1][3], outside)
    os.symlink(outside, ds / "maps" / "link.png")
    rows = rows_of(ds)
    rows[2][3] = "maps/link.png"
    write_rows(ds, rows)
    prepare_fails(ds, "line 3", "maps/link.png", "symlink pointing outside", "empty the cell")


def test_empty_split(ds: Path) -> None:
    write_rows(ds, [r for r in rows_of(ds) if r[0] != "val"])
    prepare_fails(ds, "manifest.csv", "split 'val' is empty", "assign some rows to 'val'")


@pytest.mark.parametrize("split", ["val", "test"])
def test_single_class_split(ds: Path, split: str) -> None:
    write_rows(ds, [r for r in rows_of(ds) if not (r[0] == split and r[1] == "1")])
    prepare_fails(
        ds,
        f"split '{split}' has only label 0 rows",
        "AUROC is undefined",
        f"add label 1 rows to '{split}'",
    )


def test_headerless_csv_points_to_importers(ds: Path) -> None:
    write_rows(ds, rows_of(ds)[1:])
    prepare_fails(ds, "line 1", "header lacks", "python -m salience import")


def test_bad_split_name_and_many_problems_are_counted(ds: Path) -> None:
    rows = rows_of(ds)
    rows[1][0] = "training"
    rows[2][1] = "x"
    write_rows(ds, rows)
    prepare_fails(ds, "line 2", "split 'training'", "(and 1 more problem, all logged above)")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="manifest not found.*python -m salience generate"):
        read_manifest(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------ importers
def png(path: Path, value: int, mode: str = "RGB", size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    arr = np.full(shape, value, np.uint8)
    arr[: size // 2] = 255 - value
    Image.fromarray(arr, mode=mode).save(path)


@pytest.fixture
def cyborg(tmp_path: Path) -> Path:
    """A miniature of CYBORG's layout: data root with train/ and val/, flat heatmap folder."""
    root = tmp_path / "Data"
    lines, test_lines = [], []
    for i in range(4):
        for cls, folder, tag in (("Real", "0_real", "real"), ("Synthetic", "1_fake", "fake")):
            rel = f"/train/original_data/{folder}/p1_{i}_{tag}.png"
            png(root / rel.lstrip("/"), 40 + i)
            png(root / "heatmaps" / f"p1_{i}_{tag}.png", 10 * i, mode="L")
            lines.append(f"train,{cls},{rel}")
            vrel = f"/val/{folder}/v_{i}_{tag}.png"
            png(root / vrel.lstrip("/"), 90 + i)
            lines.append(f"test,{cls},{vrel}")  # CYBORG's "test" rows are its validation set
            trel = f"/test/{folder}/t_{i}_{tag}.png"
            png(root / trel.lstrip("/"), 120 + i)
            test_lines.append(f"test,{cls},{trel}")
    (root / "original.csv").write_text("\n".join(lines) + "\n")
    (root / "progan.csv").write_text("\n".join(test_lines) + "\n")
    return root


def test_import_cyborg_then_prepare(cyborg: Path, capsys: pytest.CaptureFixture) -> None:
    out = cyborg / "manifest.csv"
    argv = ["import", "cyborg", "--csv", str(cyborg / "original.csv"), "--test-csv", str(cyborg / "progan.csv"),
            "--data-root", str(cyborg), "--heatmaps", str(cyborg / "heatmaps"), "--out", str(out),
            "--split-map", "test=val"]  # fmt: skip
    assert data_cli(argv) == 0
    assert str(out) in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["split", "label", "image", "saliency", "subset"]
    assert rows[0] == {
        "split": "train",
        "label": "0",
        "image": "train/original_data/0_real/p1_0_real.png",
        "saliency": "heatmaps/p1_0_real.png",
        "subset": "",
    }
    assert {(r["split"], r["label"], r["subset"]) for r in rows if r["split"] == "test"} == {
        ("test", "0", ""),
        ("test", "1", "progan"),
    }
    assert all(r["saliency"] == "" for r in rows if r["split"] != "train")
    prepared = PreparedDataset(prepare(out, cyborg / "prep", 8, [2]))
    assert len(prepared) == 24 and prepared.subsets("test") == ["progan"]
    assert prepared.index["has_map"].sum() == 8


def test_import_cyborg_unknown_class_and_outside_folder(cyborg: Path, tmp_path: Path) -> None:
    from salience.data.importers import import_cyborg

    bad = cyborg / "bad.csv"
    bad.write_text("train,Real,/train/original_data/0_real/p1_0_real.png\ntrain,Morph,/x.png\n")
    with pytest.raises(
        DataError, match=r"bad.csv line 2: class 'Morph' is not a known class name .*--label-map"
    ):
        import_cyborg([bad], cyborg, None, cyborg / "m.csv")
    out = import_cyborg([bad], cyborg, None, cyborg / "m.csv", label_map={"morph": "1"})
    assert out.read_text().splitlines()[2].startswith("train,1,x.png")
    with pytest.raises(
        DataError, match="lies outside the manifest's folder.*--out <data root>/manifest.csv"
    ):
        import_cyborg([cyborg / "original.csv"], cyborg, None, tmp_path / "elsewhere" / "m.csv")
    assert not (tmp_path / "elsewhere" / "m.csv").exists()


def test_import_fourcol_then_prepare(tmp_path: Path) -> None:
    root = tmp_path / "fp"
    lines = ["split,truth,img_path,saliency_path"]
    for split in ("train", "val", "test"):
        for i, truth in enumerate(("Live", "Spoof", "live", "SPOOF")):
            img = root / "img" / f"{split}{i}.png"
            png(img, 30 * i + len(split))  # a picture in two splits is refused (issue 10.5)
            sal = root / "sal" / f"{split}{i}.png"
            if split == "train":
                png(sal, 20 * i + 5, mode="L")
            lines.append(f"{split},{truth},{img},{sal if split == 'train' else ''}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    out = root / "manifest.csv"
    assert data_cli(["import", "fourcol", "--csv", str(root / "data.csv"), "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows[:4]] == ["0", "1", "0", "1"]
    assert rows[0]["image"] == "img/train0.png" and rows[0]["saliency"] == "sal/train0.png"
    prepared = PreparedDataset(prepare(out, root / "prep", 8))
    assert prepared.index["has_map"].tolist() == [True] * 4 + [False] * 8


def test_import_fourcol_relative_paths_and_bad_rows(tmp_path: Path) -> None:
    from salience.data.importers import import_fourcol

    root = tmp_path / "d"
    png(root / "a.png", 1)
    png(root / "b.png", 2)  # one image per row: an image in two splits is an error (issue 10.7)
    (root / "x.csv").write_text("train,normal,a.png,\nval,abnormal,b.png,none\n")
    out = import_fourcol(root / "x.csv", root / "manifest.csv")
    assert out.read_text().splitlines()[1:] == ["train,0,a.png,,", "val,1,b.png,,"]
    (root / "y.csv").write_text("train,bonafide,a.png\n")
    with pytest.raises(DataError, match="y.csv line 1: 3 cells"):
        import_fourcol(root / "y.csv", root / "m2.csv")
    (root / "z.csv").write_text("dev,bonafide,a.png,\n")
    with pytest.raises(
        DataError, match="split 'dev' is not train/val/test; map it with --split-map"
    ):
        import_fourcol(root / "z.csv", root / "m3.csv")
