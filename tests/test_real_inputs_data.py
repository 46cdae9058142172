"""Issue 10, items 1–7: real-world inputs that used to lose data or give wrong numbers with exit
status 0. Each case is built with real files (PNG/JPEG written here, the generated benchmark, the
importers and `prepare` themselves) and goes through the CLI's own handler (`salience.cli.main`):
exit status 2, one `error:` line with the exact message (docs/robustness.md, "Real-world inputs"),
and nothing written or deleted."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from salience.cli import main
from salience.data.generate import generate
from salience.data.prepare import prepare

SIZE = 16


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base") / "ds"
    generate("face", root, seed=0, image_size=20, n_train=8, n_val=4, n_test=12)
    return root


@pytest.fixture
def ds(base: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(base, dst)
    return dst


def rows_of(ds: Path) -> list[list[str]]:
    with open(ds / "manifest.csv", newline="") as fh:
        return list(csv.reader(fh))


def write_rows(ds: Path, rows: list[list[str]]) -> None:
    with open(ds / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


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


def write_config(tmp_path: Path, manifest: Path, **ds: object) -> Path:
    import yaml

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
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


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
    cfg = write_config(
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
            "p1": [0.1, 0.2, 0.9],
            "p_sigmoid1": [0.1, 0.2, 0.9],
        }  # fmt: skip
    )
    with pytest.raises(DataError, match=r"^run x: subset 'all' is a reserved name"):
        subset_metrics(scores, "run x")
