"""`prepare` and the prepared-data reader: layout, dtypes, memmap streaming, meta.json, the bad
inputs found while decoding (real broken files), and atomicity."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from _support import data_cli, prepare_fails, rows_of
from PIL import Image

from salience.data.generate import generate
from salience.data.prepare import prepare
from salience.data.prepared import PreparedDataset, resize_map
from salience.errors import DataError

SIZE = 16


@pytest.fixture(scope="module")
def prepared(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(base / "manifest.csv", tmp_path_factory.mktemp("prep") / "face", SIZE, [4, 2])


def no_leftovers(ds: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


# ------------------------------------------------------------------------------------- layout
def test_layout_dtypes_and_index(prepared: Path, base: Path) -> None:
    names = sorted(p.name for p in prepared.iterdir())
    assert names == [
        "images.npy",
        "index.csv",
        "maps.npy",
        "maps_cam2.npy",
        "maps_cam4.npy",
        "meta.json",
    ]
    d = PreparedDataset(prepared)
    assert len(d) == 24 and d.name == "face" and d.image_size == SIZE and d.cam_grids == [2, 4]
    assert isinstance(d.images, np.memmap) and isinstance(d.maps, np.memmap)
    assert d.images.dtype == np.uint8 and d.images.shape == (24, SIZE, SIZE, 3)
    assert d.maps.dtype == np.uint8 and d.maps.shape == (24, SIZE, SIZE)
    cam = d.maps_cam(4)
    assert cam.dtype == np.float32 and cam.shape == (24, 4, 4)
    assert list(d.index.columns) == ["split", "label", "subset", "image", "has_map"]
    assert d.index["label"].dtype == np.int64 and d.index["has_map"].dtype == bool
    with open(base / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert d.index["image"].tolist() == [r["image"] for r in manifest]
    assert d.index["subset"].tolist() == [r["subset"] for r in manifest]
    # row i of the arrays is the manifest's row i, resized with PIL bilinear (antialiased)
    for i in (0, 7, 23):
        img = (
            Image.open(base / manifest[i]["image"])
            .convert("RGB")
            .resize((SIZE, SIZE), Image.BILINEAR)
        )
        assert np.array_equal(d.images[i], np.asarray(img))
        m = d.maps[i]
        assert m.min() == 0 and m.max() == 255  # min-max at input resolution
        assert np.array_equal(cam[i], resize_map(m, 4))


def test_maps_cam_for_unprepared_grid_is_computed_and_cached(prepared: Path, caplog) -> None:
    d = PreparedDataset(prepared)
    with caplog.at_level(logging.INFO, logger="salience.data.prepared"):
        cam3 = d.maps_cam(3)
    assert "CAM grid 3 was not prepared" in caplog.text
    assert cam3.shape == (24, 3, 3) and cam3.dtype == np.float32
    assert np.array_equal(cam3[5], resize_map(d.maps[5], 3))
    assert d.maps_cam(3) is cam3
    assert cam3.min() >= 0.0 and cam3.max() == 1.0


def test_meta_counts_and_hashes(prepared: Path) -> None:
    d = PreparedDataset(prepared)
    c = d.meta["counts"]
    assert c["train"] == {"total": 8, "label": {"0": 4, "1": 4}, "with_map": 8,
                          "subset": {"progan": {"1": 2}, "stylegan2": {"1": 2}}}  # fmt: skip
    assert c["test"]["total"] == 12 and len(c["test"]["subset"]) == 6
    assert d.meta["n"] == 24 and d.meta["source"]["image_sizes"] == {"20x20": 24}
    for name, info in d.meta["files"].items():
        data = (prepared / name).read_bytes()
        assert info["bytes"] == len(data)
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert d.meta["warnings"] == {}


def test_prepare_is_deterministic(base: Path, prepared: Path, tmp_path: Path) -> None:
    again = prepare(base / "manifest.csv", tmp_path / "face", SIZE, [4, 2])
    for name in ("images.npy", "maps.npy", "maps_cam4.npy", "index.csv"):
        assert (again / name).read_bytes() == (prepared / name).read_bytes()


def test_rows_and_subsets(prepared: Path) -> None:
    d = PreparedDataset(prepared)
    test = d.rows("test")
    assert test.dtype == np.int64 and np.all(np.diff(test) > 0) and len(test) == 12
    assert d.subsets() == [
        "progan",
        "stargan2",
        "stylegan",
        "stylegan2",
        "stylegan3",
        "stylegan_ada",
    ]
    assert d.subsets("train") == ["progan", "stylegan2"]
    one = d.rows("test", include_subsets=["progan"])  # real test rows + ProGAN's
    assert set(d.index.loc[one, "subset"]) == {"", "progan"}
    assert (d.index.loc[one, "label"] == 0).sum() == 6
    rest = d.rows("test", exclude_subsets=["progan"])
    assert len(rest) + (d.index.loc[test, "subset"] == "progan").sum() == len(test)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        d.rows("dev")


def test_streaming_batches_from_memmap(prepared: Path) -> None:
    import torch

    torch.set_num_threads(1)
    d = PreparedDataset(prepared)
    rows = d.rows("train")
    seen = 0
    for i in range(0, len(rows), 3):
        idx = rows[i : i + 3]
        x = torch.from_numpy(np.ascontiguousarray(d.images[idx])).permute(0, 3, 1, 2).float() / 255
        h = torch.from_numpy(np.ascontiguousarray(d.maps_cam(4)[idx]))
        assert x.shape[1:] == (3, SIZE, SIZE) and h.shape[1:] == (4, 4)
        seen += len(idx)
        d.release_pages()
    assert seen == len(rows)
    assert int(d.images[rows[-1]].sum()) > 0  # still readable after releasing pages


def test_resize_map_guards_and_matches_pil() -> None:
    assert np.array_equal(resize_map(np.zeros((9, 9), np.uint8), 3), np.zeros((3, 3), np.float32))
    assert np.array_equal(resize_map(np.full((9, 9), 7.5), (2, 3)), np.zeros((2, 3), np.float32))
    m = np.zeros((12, 12), np.uint8)
    m[:5, :7] = 200
    out = resize_map(m, 4)
    # area mean pooling in float (PIL BOX on an 'F' image), then min-max
    ref = np.asarray(Image.fromarray(m.astype(np.float32)).resize((4, 4), Image.BOX), np.float32)
    assert np.allclose(out, (ref - ref.min()) / (ref.max() - ref.min()))
    assert out.dtype == np.float32 and out[0, 0] == 1.0 and out[3, 3] == 0.0
    assert np.allclose(resize_map(m.astype(np.float64) / 200.0, 4), out, atol=1e-2)
    assert resize_map(m, (2, 6)).shape == (2, 6)


def test_reader_on_missing_or_incomplete_folder(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; run `python -m salience prepare \.\.\.`"):
        PreparedDataset(tmp_path / "nothing")
    partial = tmp_path / "partial"
    shutil.copytree(prepared, partial)
    (partial / "maps.npy").unlink()
    with pytest.raises(
        DataError, match=r"is incomplete \(no maps.npy\); run `python -m salience prepare"
    ):
        PreparedDataset(partial)
    cut = tmp_path / "cut"
    shutil.copytree(prepared, cut)
    data = (cut / "images.npy").read_bytes()
    (cut / "images.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"is damaged: images.npy has \d+ bytes, meta.json records"):
        PreparedDataset(cut)
    (cut / "meta.json").write_text('{"image_size": 16, "cam_grids": []}')  # no sizes recorded
    with pytest.raises(DataError, match=r"images.npy is not a readable .npy array"):
        PreparedDataset(cut)


# ------------------------------------------------------------------ bad files found while decoding
def test_truncated_png(ds: Path) -> None:
    rows = rows_of(ds)
    p = ds / rows[4][2]
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    prepare_fails(
        ds,
        "line 5",
        rows[4][2],
        "unreadable or truncated image",
        "re-export the file or remove the row",
    )


def test_text_file_named_png(ds: Path) -> None:
    rows = rows_of(ds)
    (ds / rows[2][2]).write_text("this is not an image\n")
    prepare_fails(
        ds,
        "line 3",
        rows[2][2],
        "unreadable or truncated image (not an image format PIL can identify)",
    )


def test_unreadable_map(ds: Path) -> None:
    rows = rows_of(ds)
    p = ds / rows[6][3]
    p.write_bytes(p.read_bytes()[:40])
    prepare_fails(
        ds,
        "line 7",
        rows[6][3],
        "unreadable saliency map",
        "re-export the map or empty the saliency cell",
    )


def test_error_keeps_a_previous_output_intact(ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare(ds / "manifest.csv", out, SIZE)
    before = (out / "images.npy").read_bytes()
    rows = rows_of(ds)
    (ds / rows[2][2]).write_text("junk")
    with pytest.raises(DataError):
        prepare(ds / "manifest.csv", out, SIZE)
    assert (out / "images.npy").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def prepare_warns(ds: Path, caplog) -> tuple[PreparedDataset, str]:
    with caplog.at_level(logging.WARNING, logger="salience.data.prepare"):
        out = prepare(ds / "manifest.csv", ds.parent / "prepared", SIZE, [4])
    return PreparedDataset(out), caplog.text


def test_rgb_map_is_converted_with_a_warning(ds: Path, caplog) -> None:
    rows = rows_of(ds)
    p = ds / rows[3][3]
    grey = Image.open(p)
    Image.merge("RGB", [grey, grey, grey]).save(p)
    d, text = prepare_warns(ds, caplog)
    assert (
        "line 4" in text
        and rows[3][3] in text
        and "RGB saliency map converted to greyscale" in text
    )
    # maps shrink by area mean in float (PIL BOX on an 'F' image), then min-max (docs/data.md §3)
    ref = Image.fromarray(np.asarray(grey, np.float32)).resize((SIZE, SIZE), Image.BOX)
    ref = np.asarray(ref, np.float32)
    ref = np.round((ref - ref.min()) / (ref.max() - ref.min()) * 255)
    assert np.array_equal(d.maps[2], ref.astype(np.uint8))
    assert d.meta["warnings"] == {"colour map converted to greyscale": 1}


def test_map_of_another_size_is_resized_with_a_warning(ds: Path, caplog) -> None:
    rows = rows_of(ds)
    p = ds / rows[5][3]
    Image.open(p).resize((30, 12), Image.BILINEAR).save(p)
    d, text = prepare_warns(ds, caplog)
    assert "line 6" in text and rows[5][3] in text and "map is 30×12 but its image is 20×20" in text
    assert d.index.loc[4, "has_map"] and d.maps[4].max() == 255


def test_all_zero_map_is_dropped_with_a_warning(ds: Path, caplog) -> None:
    rows = rows_of(ds)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(ds / rows[1][3])
    d, text = prepare_warns(ds, caplog)
    assert "line 2" in text and rows[1][3] in text and "all-zero map carries no saliency" in text
    assert not d.index.loc[0, "has_map"] and d.index["has_map"].sum() == 23
    assert d.maps[0].max() == 0 and d.maps_cam(4)[0].max() == 0
    assert d.meta["counts"]["train"]["with_map"] == 7


# ------------------------------------------------------------------------------------------- CLI
def test_cli_prepare_manifest_and_config(ds: Path, tmp_path: Path, capsys) -> None:
    from salience.errors import ConfigError

    out = tmp_path / "own"
    assert data_cli(["prepare", "--manifest", str(ds / "manifest.csv"), "--out", str(out),
                    "--image-size", "8", "--cam-grids", "2"]) == 0  # fmt: skip
    assert str(out) in capsys.readouterr().out
    assert PreparedDataset(out).images.shape == (24, 8, 8, 3)
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "datasets": {
            "mine": {
                "task": "custom",
                "source": "manifest",
                "manifest": str(ds / "manifest.csv"),
                "image_size": 12,
                "cam_grids": [3],
            }
        },  # fmt: skip
        "experiments": {
            "main": {
                "datasets": ["mine"],
                "backbones": ["smallcnn"],
                "methods": ["xent"],
                "seeds": [0],
            }
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert data_cli(["prepare", "--config", str(tmp_path / "c.yaml"), "--dataset", "mine"]) == 0
    d = PreparedDataset(tmp_path / "data" / "prepared" / "mine")
    assert d.name == "mine" and d.image_size == 12 and d.cam_grids == [3]
    with pytest.raises(ConfigError, match="--manifest CSV --out DIR --image-size N"):
        data_cli(["prepare", "--manifest", str(ds / "manifest.csv")])


def test_refuses_to_replace_a_foreign_folder(ds: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(DataError, match="exists and is not a prepared dataset .no meta.json."):
        prepare(ds / "manifest.csv", precious, SIZE)
    with pytest.raises(
        DataError, match="exists and is not a generated dataset .no generator.json."
    ):
        generate("chest", precious, image_size=16, n_train=4, n_val=4, n_test=4)
    assert (precious / "thesis.tex").read_text() == "x"


def test_many_resized_maps_make_one_warning_line(ds: Path, caplog) -> None:
    """Issue 14: a layout where every map differs in size (CYBORG's) logs one line with the count
    and two examples, not one line per row."""
    rows = rows_of(ds)
    with_map = [r for r in rows[1:] if r[3]]
    for r in with_map:
        p = ds / r[3]
        Image.open(p).resize((30, 12), Image.BILINEAR).save(p)
    d, _ = prepare_warns(ds, caplog)
    lines = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    sized = [ln for ln in lines if "map size differs" in ln or "map is 30×12" in ln]
    assert len(sized) == 1, lines
    assert sized[0].startswith(f"{len(with_map)} rows: map size differs from its image; e.g. ")
    assert sized[0].count("map is 30×12 but its image is 20×20") == 2
    assert d.meta["warnings"]["map size differs from its image"] == len(with_map)
