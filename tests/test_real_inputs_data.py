"""Issue 10, items 1–7: real-world inputs that used to lose data or give wrong numbers with exit
status 0. Each case is built with real files (PNG/JPEG written here, the generated benchmark, the
importers and `prepare` themselves) and goes through the CLI's own handler (`salience.cli.main`):
exit status 2, one `error:` line with the exact message (docs/robustness.md, "Real-world inputs"),
and nothing written or deleted."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _support import csv_dicts, rows_of, write_config, write_rows
from PIL import Image

from salience.cli import main
from salience.data.prepare import prepare

SIZE = 16


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `folder` (symlinks by target name)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = "->" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the CLI in-process; it must exit 2 with one `error:` line and no traceback."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "\n" not in last
    return last[len("error: ") :]


def prepare_argv(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--manifest", str(manifest), "--out", str(out), "--image-size", str(SIZE),
            *extra]  # fmt: skip


# ------------------------------------------------------------------ 1. output onto the sources
def test_prepare_out_onto_the_dataset_folder_with_a_meta_json_deletes_nothing(
    ds: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue instance: the dataset ships its own meta.json; --out is the dataset folder."""
    (ds / "meta.json").write_text('{"dataset": "faces", "license": "CC-BY-4.0"}\n')
    before = snapshot(ds)
    msg = cli_error(prepare_argv(ds / "manifest.csv", ds), capsys)
    assert msg == (
        f"output folder {ds} contains the manifest {ds / 'manifest.csv'}; preparing there would "
        f"delete the source data: choose an --out outside {ds} (e.g. data/prepared/<name>)"
    )
    assert snapshot(ds) == before
    # the folder above the dataset folder lies above every source file: refused as well
    msg = cli_error(prepare_argv(ds / "manifest.csv", ds.parent), capsys)
    assert msg.startswith(f"output folder {ds.parent} contains the manifest ")
    assert snapshot(ds) == before


def test_prepare_out_holding_an_image_of_the_manifest_is_refused(
    ds: Path, capsys: pytest.CaptureFixture
) -> None:
    """Sibling: --out is a folder inside the dataset that holds images the manifest lists."""
    before = snapshot(ds)
    msg = cli_error(prepare_argv(ds / "manifest.csv", ds / "images"), capsys)
    assert msg == (
        f"output folder {ds / 'images'} contains {ds / 'manifest.csv'} line 2: image "
        f"{ds / 'images/train/train_00000.png'}; preparing there would delete the source data: "
        f"choose an --out outside {ds} (e.g. data/prepared/<name>)"
    )
    assert snapshot(ds) == before


def test_a_meta_json_alone_does_not_make_a_folder_replaceable(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A foreign meta.json is not a prepared-output marker; a real prepared output with a file
    added by the user is not replaced either; a real one alone is (re-prepare)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "meta.json").write_text('{"author": "me"}\n')
    (notes / "thesis.tex").write_text("x")
    msg = cli_error(prepare_argv(ds / "manifest.csv", notes), capsys)
    assert msg == (
        f"output folder {notes} exists and is not a prepared dataset (its meta.json is not one of "
        f"ours); it would be replaced: choose a new or empty folder, or remove it yourself"
    )
    out = prepare(ds / "manifest.csv", tmp_path / "prep", SIZE)
    (out / "README.txt").write_text("my notes")
    msg = cli_error(prepare_argv(ds / "manifest.csv", out), capsys)
    assert msg == (
        f"output folder {out} holds README.txt, which is not part of a prepared dataset; it would "
        f"be deleted when the folder is replaced: choose a new or empty folder, or remove it yourself"
    )
    assert (out / "README.txt").read_text() == "my notes" and (notes / "thesis.tex").exists()
    (out / "README.txt").unlink()
    assert main(prepare_argv(ds / "manifest.csv", out)) == 0  # our own output: replaced


def test_generate_refuses_a_generated_folder_holding_user_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Sibling for `generate`: a generator.json no longer proves the whole folder is ours."""
    out = tmp_path / "gen"
    argv = ["generate", "--task", "chest", "--out", str(out), "--image-size", "16",
            "--n-train", "4", "--n-val", "4", "--n-test", "4"]  # fmt: skip
    assert main(argv) == 0
    (out / "images" / "train" / "my_scan.png").write_bytes(b"precious")
    before = snapshot(out)
    msg = cli_error(argv, capsys)
    assert msg == (
        f"output folder {out} holds images/train/my_scan.png, which is not part of a generated "
        f"dataset; it would be deleted when the folder is replaced: choose a new or empty folder, "
        f"or remove it yourself"
    )
    assert snapshot(out) == before
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "generator.json").write_text(json.dumps({"note": "copied"}))
    (fake / "data.csv").write_text("x")
    assert "its generator.json is not one of ours" in cli_error(
        ["generate", "--task", "chest", "--out", str(fake)], capsys
    )
    (out / "images" / "train" / "my_scan.png").unlink()
    assert main(argv) == 0  # only our own files: regenerated


# ------------------------------------------------------------------ 2. reserved subset / fold names
RESERVED_WHY = (
    "'all' is a reserved name ('all' is the overall AUROC and the fold without a held-out subset; "
    "'.' and '..' are folders); reserved: all, ., .."
)


def manifest_config(tmp_path: Path, manifest: Path, **ds: object) -> Path:
    """A config.yaml under tmp_path whose one dataset `mine` is `manifest` (written as is: the
    CLI under test validates it)."""
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "results_dir": str(tmp_path / "results"),
        "datasets": {
            "mine": {"task": "face", "source": "manifest", "manifest": str(manifest), **ds}
        },
        "train": {"epochs": 1, "batch_size": 8, "threads": 1},
        "model": {"weights": "none"},
        "experiments": {
            "main": {
                "datasets": ["mine"],
                "backbones": ["smallcnn"],
                "methods": ["xent"],
                "seeds": [0],
            }  # fmt: skip
        },
    }
    return write_config(cfg)


def test_subset_named_all_is_refused_at_prepare(ds: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue instance: a generator called `all` used to overwrite the overall AUROC."""
    rows = rows_of(ds)
    assert rows[19][4] == "stylegan3"
    rows[19][4] = "all"
    write_rows(ds, rows)
    msg = cli_error(prepare_argv(ds / "manifest.csv", ds.parent / "prep"), capsys)
    assert msg == (
        f"{ds / 'manifest.csv'} line 20: images/test/test_00006.png: subset {RESERVED_WHY}; "
        f"rename the subset in the manifest"
    )
    assert not (ds.parent / "prep").exists()


def test_holdout_subset_all_is_refused_at_config_time(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue instance: `holdout_subsets: [all]` used to keep the held-out rows in training."""
    cfg = manifest_config(
        tmp_path,
        ds / "manifest.csv",
        folds="leave_one_subset_out",
        holdout_subsets=["progan", "all"],
    )
    msg = cli_error(["prepare", "--config", str(cfg), "--dataset", "mine"], capsys)
    assert msg == (
        f"{cfg}: datasets.mine.holdout_subsets: {RESERVED_WHY}; rename that subset in the "
        f"manifest and here"
    )
    assert not (tmp_path / "data").exists()


def test_reserved_names_are_refused_by_importers_and_on_old_prepared_data(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Siblings: a CYBORG test CSV called all.csv (its stem is the subset), a 4-column CSV whose
    subset would collide with the σ-AUROC metric names, and a folder prepared before the check."""
    test_csv = tmp_path / "all.csv"
    test_csv.write_text(
        "test,Real,/images/test/test_00000.png\ntest,Fake,/images/test/test_00003.png\n"
    )
    msg = cli_error(
        [
            "import",
            "cyborg",
            "--csv",
            str(test_csv),
            "--test-csv",
            str(test_csv),
            "--data-root",
            str(ds),
            "--out",
            str(ds / "m.csv"),
        ],  # fmt: skip
        capsys,
    )
    assert (
        msg
        == f"--test-csv {test_csv}: its file stem names the subset, but {RESERVED_WHY}; rename the CSV"
    )
    four = tmp_path / "four.csv"
    four.write_text(
        "train,live,images/train/train_00001.png,,\ntest,spoof,images/test/test_00003.png,,sigmoid_progan\n"
    )
    msg = cli_error(
        ["import", "fourcol", "--csv", str(four), "--root", str(ds), "--out", str(ds / "m.csv")],
        capsys,
    )
    assert msg == (
        f"{four} line 2: subset 'sigmoid_progan' starts with the reserved prefix 'sigmoid_' (it "
        f"would collide with the metric test_auroc_sigmoid_progan of subset 'progan'); rename the "
        f"subset in the CSV"
    )
    assert not (ds / "m.csv").exists()
    # a subset outside the name charset is refused by the importers too, not first by prepare
    four.write_text(
        "train,live,images/train/train_00001.png,,\ntest,spoof,images/test/test_00003.png,,gan 2\n"
    )
    msg = cli_error(
        ["import", "fourcol", "--csv", str(four), "--root", str(ds), "--out", str(ds / "m.csv")],
        capsys,
    )
    assert msg.startswith(f"{four} line 2: subset name 'gan 2' may use only letters, digits")
    spaced = tmp_path / "style gan.csv"
    spaced.write_text(test_csv.read_text())
    msg = cli_error(
        [
            "import",
            "cyborg",
            "--csv",
            str(spaced),
            "--test-csv",
            str(spaced),
            "--data-root",
            str(ds),
            "--out",
            str(ds / "m.csv"),
        ],  # fmt: skip
        capsys,
    )
    assert msg.startswith(f"--test-csv {spaced}: its file stem names the subset, but name 'style")
    assert not (ds / "m.csv").exists()
    # a folder prepared by an older version with a subset `all`: the reader refuses it
    out = prepare(ds / "manifest.csv", tmp_path / "prep", SIZE)
    index = out / "index.csv"
    index.write_text(index.read_text().replace(",stylegan3,", ",all,"))
    meta = json.loads((out / "meta.json").read_text())
    meta["files"]["index.csv"]["bytes"] = index.stat().st_size
    (out / "meta.json").write_text(json.dumps(meta))
    from salience.data.prepared import PreparedDataset
    from salience.errors import DataError

    with pytest.raises(DataError) as exc:
        PreparedDataset(out)
    assert str(exc.value) == (
        f"{index}: subset {RESERVED_WHY}; rename the subset in the manifest and run "
        f"`python -m salience prepare ...` again"
    )
    # and evaluation refuses scores whose subset would overwrite the overall AUROC
    import pandas as pd

    from salience.evaluation.metrics import subset_metrics

    scores = pd.DataFrame(
        {
            "label": [0, 1, 1],
            "subset": ["", "all", "progan"],
            "logit0": [0.0, 0.0, 0.0],
            "logit1": [-2.0, -1.0, 2.0],
        }  # fmt: skip
    )
    with pytest.raises(DataError, match=r"^run x: subset 'all' is a reserved name"):
        subset_metrics(scores, "run x")


# ------------------------------------------------------------------ 3, 4, 7. importers
def picture(path: Path, value: int, size: int = 12, mode: str = "RGB") -> None:
    """A real image file (format from the extension) with two halves, so it is never constant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    arr = np.full(shape, value % 256, np.uint8)
    arr[: size // 2] = 255 - value % 256
    Image.fromarray(arr, mode=mode).save(path)


def cyborg_tree(root: Path, img_ext: str = ".jpg", map_ext: str = ".png") -> dict[str, Path]:
    """CYBORG's layout in miniature: train/val images with a flat heatmap folder (maps for train
    only), two generator test CSVs that share the same real test images."""
    lines = []
    for i in range(3):
        for cls, folder in (("Real", "0_real"), ("Synthetic", "1_fake")):
            name = f"p{i}_{folder}{img_ext}"
            picture(root / "train" / folder / name, 40 + 7 * i + (folder == "1_fake"))
            picture(root / "heatmaps" / f"p{i}_{folder}{map_ext}", 10 * i + 5, mode="L")
            lines.append(f"train,{cls},/train/{folder}/{name}")
            vname = f"v{i}_{folder}{img_ext}"
            picture(root / "val" / folder / vname, 90 + 7 * i + (folder == "1_fake"))
            lines.append(f"test,{cls},/val/{folder}/{vname}")  # CYBORG's "test" = validation
    (root / "original.csv").write_text("\n".join(lines) + "\n")
    csvs = {"original": root / "original.csv"}
    for g, gen in enumerate(("progan", "stylegan2")):
        glines = []
        for i in range(2):
            picture(root / "test" / "real" / f"r{i}{img_ext}", 150 + i)  # shared by both CSVs
            glines.append(f"test,Real,/test/real/r{i}{img_ext}")
            picture(root / "test" / gen / f"f{i}{img_ext}", 180 + 10 * g + i)
            glines.append(f"test,Synthetic,/test/{gen}/f{i}{img_ext}")
        csvs[gen] = root / f"{gen}.csv"
        csvs[gen].write_text("\n".join(glines) + "\n")
    return csvs


def import_argv(root: Path, csvs: dict[str, Path], *extra: str) -> list[str]:
    return ["import", "cyborg", "--csv", str(csvs["original"]), "--split-map", "test=val",
            "--test-csv", str(csvs["progan"]), "--test-csv", str(csvs["stylegan2"]),
            "--data-root", str(root), "--out", str(root / "manifest.csv"), *extra]  # fmt: skip


def test_cyborg_heatmaps_are_matched_by_stem_across_extensions(tmp_path: Path) -> None:
    """Issue instance (3): JPEG images, PNG heatmaps. Matching by exact file name found none and
    `cyborg` then trained on CE alone; now every train image gets its map. Also 7: the real test
    images shared by the two generator CSVs are one row each, and `prepare` accepts the result."""
    root = tmp_path / "Data"
    csvs = cyborg_tree(root)
    assert main(import_argv(root, csvs, "--heatmaps", str(root / "heatmaps"))) == 0
    rows = csv_dicts(root / "manifest.csv")
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 6
    assert all(r["saliency"] == f"heatmaps/{Path(r['image']).stem}.png" for r in train)
    test = [r for r in rows if r["split"] == "test"]
    assert sorted(r["image"] for r in test if r["label"] == "0") == [
        "test/real/r0.jpg",
        "test/real/r1.jpg",
    ]
    assert (
        sorted(r["subset"] for r in test if r["label"] == "1") == ["progan"] * 2 + ["stylegan2"] * 2
    )
    out = prepare(root / "manifest.csv", tmp_path / "prep", SIZE)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["train"]["with_map"] == 6 and meta["counts"]["test"]["total"] == 6


def test_cyborg_import_reports_found_and_missing_maps(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """Sibling (3): some heatmaps missing → counts and two examples; a heatmap folder that matches
    no image at all (maps named after another scheme) → error, no manifest."""
    root = tmp_path / "Data"
    csvs = cyborg_tree(root, img_ext=".png", map_ext=".jpg")
    (root / "heatmaps" / "p1_0_real.jpg").unlink()
    (root / "heatmaps" / "p2_1_fake.jpg").unlink()
    with caplog.at_level("WARNING"):
        assert main(import_argv(root, csvs, "--heatmaps", str(root / "heatmaps"))) == 0
    exts = "png|jpg|jpeg|bmp|tif|tiff|gif|webp|pgm|ppm"
    assert (
        f"saliency maps found for 4 of 6 train images, 2 have none (looked for <image stem>.<{exts}> "
        f"under {root / 'heatmaps'}; e.g. train/0_real/p1_0_real.png, train/1_fake/p2_1_fake.png)"
        in caplog.text
    )
    other = tmp_path / "maps_by_id"
    picture(other / "0001.png", 3, mode="L")
    (root / "manifest.csv").unlink()
    msg = cli_error(import_argv(root, csvs, "--heatmaps", str(other)), capsys)
    assert msg == (
        f"--heatmaps {other}: no heatmap matches any of the 18 images (looked for <image stem>."
        f"<{exts}> under {other}, e.g. train/0_real/p0_0_real.png, train/1_fake/p0_1_fake.png); "
        f"check the folder, or leave --heatmaps out to import without maps"
    )
    assert not (root / "manifest.csv").exists()
    # --heatmaps given the data root itself: an image is never its own map
    msg = cli_error(import_argv(root, csvs, "--heatmaps", str(root)), capsys)
    assert msg.startswith(f"--heatmaps {root}: no heatmap matches any of the 18 images")


def test_one_heatmap_matched_to_two_classes_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue instance (4): train/0_real/0003.png and train/1_fake/0003.png share heatmaps/0003.png."""
    root = tmp_path / "Data"
    picture(root / "train/0_real/0003.png", 20)
    picture(root / "train/1_fake/0003.png", 200)
    picture(root / "heatmaps/0003.png", 9, mode="L")
    orig = root / "original.csv"
    orig.write_text("train,Real,/train/0_real/0003.png\ntrain,Synthetic,/train/1_fake/0003.png\n")
    argv = ["import", "cyborg", "--csv", str(orig), "--data-root", str(root),
            "--heatmaps", str(root / "heatmaps"), "--out", str(root / "manifest.csv")]  # fmt: skip
    msg = cli_error(argv, capsys)
    assert msg == (
        f"{root / 'heatmaps/0003.png'}: matched by file name alone to 2 different images "
        f"({orig} line 1: train/0_real/0003.png; {orig} line 2: train/1_fake/0003.png); a map "
        f"belongs to one image: mirror the image folders under {root / 'heatmaps'} (e.g. "
        f"{root / 'heatmaps/train/0_real/0003.png'}) or rename the maps"
    )
    assert not (root / "manifest.csv").exists()
    # the layout disambiguates: maps in folders that mirror the image folders
    (root / "heatmaps/0003.png").unlink()
    picture(root / "heatmaps/0_real/0003.png", 9, mode="L")
    picture(root / "heatmaps/1_fake/0003.jpg", 77, mode="L")
    assert main(argv) == 0
    assert [r["saliency"] for r in csv_dicts(root / "manifest.csv")] == [
        "heatmaps/0_real/0003.png",
        "heatmaps/1_fake/0003.jpg",
    ]
    # sibling: two maps for one image (x.png and x.jpg side by side) are ambiguous
    picture(root / "heatmaps/0_real/0003.bmp", 9, mode="L")
    msg = cli_error(argv, capsys)
    assert msg == (
        f"{orig} line 1: train/0_real/0003.png: 2 heatmaps match its name "
        f"({root / 'heatmaps/0_real/0003.bmp'}, {root / 'heatmaps/0_real/0003.png'}); keep one of "
        f"them, or mirror the image folders under {root / 'heatmaps'} so that the folder tells "
        f"them apart"
    )


def test_the_same_image_in_two_roles_is_an_error_at_import(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Sibling (7): shared rows merge only when they agree; a fake image listed by two generator
    CSVs, or one image in train and test, names both lines."""
    root = tmp_path / "Data"
    csvs = cyborg_tree(root)
    with open(csvs["stylegan2"], "a") as fh:
        fh.write("test,Synthetic,/test/progan/f0.jpg\n")
    msg = cli_error(import_argv(root, csvs), capsys)
    assert msg == (
        f"{csvs['stylegan2']} line 5: test/progan/f0.jpg: already listed on {csvs['progan']} line 2 "
        f"as test label 1 subset progan, here as test label 1 subset stylegan2; an image belongs to "
        f"one split, class and subset: remove one of the rows"
    )
    four = tmp_path / "four.csv"
    four.write_text(
        f"train,live,{root}/train/0_real/p0_0_real.jpg,none\n"
        f"test,live,{root}/train/0_real/p0_0_real.jpg,none\n"
    )
    msg = cli_error(["import", "fourcol", "--csv", str(four), "--out", str(root / "m.csv")], capsys)
    assert msg == (
        f"{four} line 2: train/0_real/p0_0_real.jpg: already listed on {four} line 1 as train "
        f"label 0, here as test label 0; an image belongs to one split, class and subset: remove one "
        f"of the rows"
    )
    assert not (root / "manifest.csv").exists() and not (root / "m.csv").exists()


# ------------------------------------------------------------------ 3. training without maps
def train_argv(cfg: Path, method: str) -> list[str]:
    return ["train", "--config", str(cfg), "--run-id", f"mine/all/smallcnn/{method}/base/seed0",
            "--no-mlflow"]  # fmt: skip


def test_a_map_method_refuses_a_training_split_without_maps(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue instance (3): no train row has a map; `cyborg` used to train on CE alone under the
    name CYBORG. Now it stops with one line; xent (no maps) still trains. Sibling: 1 of 8 train
    rows annotated → a warning naming train.min_annotated_fraction."""
    rows = rows_of(ds)
    for r in rows[1:]:
        r[3] = ""
    write_rows(ds, rows)
    cfg = manifest_config(tmp_path, ds / "manifest.csv", image_size=SIZE)
    assert main(["prepare", "--config", str(cfg), "--dataset", "mine"]) == 0
    prepared = tmp_path / "data/prepared/mine"
    msg = cli_error(train_argv(cfg, "cyborg"), capsys)
    assert msg == (
        f"mine/all/smallcnn/cyborg/base/seed0: method 'cyborg' trains on human saliency maps, but "
        f"none of the 8 train rows of fold 'all' in {prepared} has one (prepared from "
        f"{ds / 'manifest.csv'}: empty saliency cells or all-zero maps); fill the manifest's "
        f"saliency column (`import cyborg --heatmaps` matches maps by image stem) and prepare "
        f"again, or train xent"
    )
    run = tmp_path / "results/runs/mine/all/smallcnn/cyborg/base/seed0"
    assert not run.exists() or not any(run.iterdir())
    assert main(train_argv(cfg, "xent")) == 0
    rows[1][3] = "maps/train/train_00000.png"
    write_rows(ds, rows)
    assert main(["prepare", "--config", str(cfg), "--dataset", "mine"]) == 0
    with caplog.at_level("WARNING"):
        assert main(train_argv(cfg, "cyborg")) == 0
    assert (
        "mine/all/smallcnn/cyborg/base/seed0: only 1 of 8 train rows (12%) have a human saliency "
        "map, fewer than train.min_annotated_fraction 0.5; cyborg trains the others on "
        "cross-entropy alone" in caplog.text
    )


def fourcol_dataset(root: Path, map_ext: str, first_map: str | None = None) -> Path:
    """Two images per split (PNG) with maps stored as sal/<name>.<map_ext>, and a 4-column
    data.csv naming every map sal/<name>.png (the first row names `first_map` instead)."""
    lines = []
    for split in ("train", "val", "test"):
        for i, truth in enumerate(("live", "spoof")):
            picture(root / "img" / f"{split}{i}.png", 30 * i + len(split))
            picture(root / "sal" / f"{split}{i}.{map_ext}", 40 * i + 9, mode="L")
            lines.append(f"{split},{truth},img/{split}{i}.png,sal/{split}{i}.png")
    if first_map is not None:
        lines[0] = f"train,live,img/train0.png,{first_map}"
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root


def test_fourcol_map_with_another_extension_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Sibling (3) for `import fourcol`: the CSV names sal/x.png, the folder holds sal/x.jpg."""
    root = fourcol_dataset(tmp_path / "fp", map_ext="jpg")
    argv = ["import", "fourcol", "--csv", str(root / "data.csv"), "--out", str(root / "m.csv")]
    assert main(argv) == 0
    assert [r["saliency"] for r in csv_dicts(root / "m.csv")][:2] == [
        "sal/train0.jpg",
        "sal/train1.jpg",
    ]
    picture(root / "sal" / "train0.bmp", 3, mode="L")
    msg = cli_error(argv, capsys)
    assert msg == (
        f"{root / 'data.csv'} line 1: {root / 'sal/train0.png'}: no such file, and 2 maps share its "
        f"stem ({root / 'sal/train0.bmp'}, {root / 'sal/train0.jpg'}); name the one that belongs to "
        f"the image"
    )


def test_fourcol_counts_a_named_map_that_does_not_exist_as_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The import's map count counts files, not filled cells: a row naming sal/nothere.png."""
    root = fourcol_dataset(tmp_path / "fp", map_ext="png", first_map="sal/nothere.png")
    caplog.set_level(logging.INFO)
    argv = ["import", "fourcol", "--csv", str(root / "data.csv"), "--out", str(root / "m.csv")]
    assert main(argv) == 0
    assert "saliency maps found for 1 of 2 train images, 1 have none or name a missing file" in (
        caplog.text
    )
    assert "found for all" not in caplog.text


# ------------------------------------------------------------------ 5. a picture in two splits
DUP_FIX = (
    "a picture in two splits lets the test score what the network was trained or selected on: "
    "remove one of the rows, or allow it with --allow-cross-split-duplicates "
    "(datasets.<name>.allow_cross_split_duplicates: true)"
)


def test_a_train_image_copied_into_test_is_an_error(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue instance (5): a train image copied into test under another name."""
    rows = rows_of(ds)
    assert rows[13][:2] == ["test", "0"] and rows[2][:2] == ["train", "0"]
    shutil.copy(ds / rows[2][2], ds / "images/test/holiday_copy.png")
    rows[13][2] = "images/test/holiday_copy.png"
    write_rows(ds, rows)
    out = tmp_path / "prep"
    msg = cli_error(prepare_argv(ds / "manifest.csv", out), capsys)
    assert msg == (
        f"{ds / 'manifest.csv'} line 14: images/test/holiday_copy.png (test) shows the same picture "
        f"as line 3: images/train/train_00001.png (train) (identical pixels at 16×16); {DUP_FIX}"
    )
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # the documented switch keeps it, counted in meta.json
    assert main(prepare_argv(ds / "manifest.csv", out, "--allow-cross-split-duplicates")) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["warnings"] == {"picture in two splits (allowed)": 1}


def test_a_symlink_or_a_re_encoded_copy_across_splits_is_an_error(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Siblings (5): a symlink in test to a train image; a val image saved again as BMP in test."""
    rows = rows_of(ds)
    os.symlink(ds / rows[2][2], ds / "images/test/link.png")
    rows[13][2] = "images/test/link.png"
    write_rows(ds, rows)
    msg = cli_error(prepare_argv(ds / "manifest.csv", tmp_path / "prep"), capsys)
    assert msg.startswith(
        f"{ds / 'manifest.csv'} line 14: images/test/link.png (test) shows the same picture as line 3"
    )
    rows = rows_of(ds)
    assert rows[11][:2] == ["val", "0"]
    Image.open(ds / rows[11][2]).save(ds / "images/test/resaved.bmp")
    rows[13][2] = "images/test/resaved.bmp"
    write_rows(ds, rows)
    msg = cli_error(prepare_argv(ds / "manifest.csv", tmp_path / "prep"), capsys)
    assert msg == (
        f"{ds / 'manifest.csv'} line 14: images/test/resaved.bmp (test) shows the same picture as "
        f"line 12: images/val/val_00002.png (val) (identical pixels at 16×16); {DUP_FIX}"
    )
    assert not (tmp_path / "prep").exists()


# ------------------------------------------------------------------ 6. prepared data vs config
def test_hand_prepared_data_of_another_size_stops_training(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue instance (6): data prepared by hand at 16 px, a config asking 24 px (and another CAM
    grid). Training used to run on 16 px and write image_size 24 into run.json."""
    prepared = tmp_path / "data/prepared/mine"
    assert main(prepare_argv(ds / "manifest.csv", prepared, "--cam-grids", "4")) == 0
    cfg = manifest_config(tmp_path, ds / "manifest.csv", image_size=24, cam_grids=[4])
    fix = "prepare it again (python -m salience prepare --config <config> --dataset mine)"
    msg = cli_error(train_argv(cfg, "xent"), capsys)
    assert msg == (
        f"{prepared}: prepared at image_size 16, but datasets.mine.image_size is 24; {fix} or set "
        f"image_size back to 16"
    )
    cfg = manifest_config(tmp_path, ds / "manifest.csv", image_size=SIZE, cam_grids=[2])
    msg = cli_error(train_argv(cfg, "xent"), capsys)
    assert msg == (
        f"{prepared}: prepared with cam_grids [4], but datasets.mine.cam_grids is [2]; {fix} or "
        f"set cam_grids to [4]"
    )
    run = tmp_path / "results/runs/mine/all/smallcnn/xent/base/seed0"
    assert not (run / "run.json").exists() and not (run / "model.pt").exists()
    # the workflow's own path: prepare --config re-prepares, then training runs and records 24
    cfg = manifest_config(tmp_path, ds / "manifest.csv", image_size=24, cam_grids=[4])
    assert main(["prepare", "--config", str(cfg), "--dataset", "mine"]) == 0
    assert main(train_argv(cfg, "xent")) == 0
    assert json.loads((run / "run.json").read_text())["data"]["image_size"] == 24


def test_stale_manifest_or_model_of_another_size_is_refused(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Siblings (6): the manifest edited after `prepare`; a model trained at 16 px evaluated on
    data prepared at 24 px (a pooled CNN would score it without complaint)."""
    cfg = manifest_config(tmp_path, ds / "manifest.csv", image_size=SIZE)
    assert main(["prepare", "--config", str(cfg), "--dataset", "mine"]) == 0
    assert main(train_argv(cfg, "xent")) == 0
    model = tmp_path / "results/runs/mine/all/smallcnn/xent/base/seed0/model.pt"
    other = tmp_path / "prep24"
    assert main(["prepare", "--manifest", str(ds / "manifest.csv"), "--out", str(other),
                 "--image-size", "24"]) == 0  # fmt: skip
    msg = cli_error(["evaluate", "--checkpoint", str(model), "--prepared", str(other),
                     "--out", str(tmp_path / "eval"), "--no-mlflow"], capsys)  # fmt: skip
    assert msg == (
        f"{model}: trained on 16×16 images, but {other} holds 24×24; evaluate on data prepared at "
        f"image_size 16"
    )
    assert not (tmp_path / "eval").exists()
    before = hashlib.sha256((ds / "manifest.csv").read_bytes()).hexdigest()
    rows = rows_of(ds)
    assert rows[3][1] == "0"
    rows[3][1] = "1"  # a label fixed after prepare
    write_rows(ds, rows)
    after = hashlib.sha256((ds / "manifest.csv").read_bytes()).hexdigest()
    prepared = tmp_path / "data/prepared/mine"
    msg = cli_error(train_argv(cfg, "cyborg"), capsys)
    assert msg == (
        f"{prepared}: prepared from another version of {ds / 'manifest.csv'} (sha256 "
        f"{before[:12]}…, now {after[:12]}…); prepare it again (python -m salience prepare "
        f"--config <config> --dataset mine)"
    )
