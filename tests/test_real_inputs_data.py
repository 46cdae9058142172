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
