"""`import fixations` and `import regions`: human saliency from eye tracking and drawn regions.

Real PNG images of known size, fixation files in the published egd-cxr and REFLACX layouts (and
the generic one), COCO JSON and a box CSV; every map is checked against an independent
computation (scipy.ndimage.gaussian_filter on a duration-weighted point image; a PIL-free
point-in-polygon test for regions), then the manifest is prepared by `prepare`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from _support import REPO, csv_dicts, run_cli
from PIL import Image
from scipy.ndimage import gaussian_filter

from salience.cli import main
from salience.data.fixations import import_fixations, rasterise
from salience.data.prepared import PreparedDataset
from salience.data.regions import import_regions
from salience.errors import DataError

W, H = 40, 30
# id, split, label: both classes in every split, as `prepare` requires
IDS = [("a", "train", 0), ("b", "train", 1), ("c", "val", 0), ("d", "val", 1),
       ("e", "test", 0), ("f", "test", 1)]  # fmt: skip


def dataset(root: Path, size: dict[str, tuple[int, int]] | None = None) -> Path:
    """Images (nested, like MIMIC-CXR's files/pXX/...) and the label CSV; returns the labels."""
    rng = np.random.default_rng(0)
    for key, _, _ in IDS:
        w, h = (size or {}).get(key, (W, H))
        p = root / "files" / f"p{key}" / f"{key}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(p)
    lines = ["image,split,label,subset"] + [f"{k},{s},{lab}," for k, s, lab in IDS]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def reference(readings: list[list[tuple]], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """The independent map: per reading, a duration-weighted point image at integer positions
    blurred by scipy (per fixation, as σ may differ), normalised to unit mass; readings
    averaged; min-max to 0…255 and rounded."""
    maps = []
    for fixes in readings:
        m = np.zeros(shape)
        for x, y, d, sx, sy in fixes:
            p = np.zeros(shape)
            p[y, x] = d
            m += gaussian_filter(p, (sy, sx), mode="constant", truncate=8.0)
        maps.append(m / m.sum())
    avg = np.mean(maps, axis=0)
    return np.rint((avg - avg.min()) * 255.0 / (avg.max() - avg.min())).astype(int)


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (W, H)
        return np.asarray(im).astype(int)


def manifest_rows(path: Path) -> dict[str, dict[str, str]]:
    return {Path(r["image"]).stem: r for r in csv_dicts(path)}


def test_rasterise_matches_scipy_gaussian_filter() -> None:
    """The analytic separable rasteriser equals scipy's filter of a weighted point image."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, W, 25), rng.integers(0, H, 25)
    d = rng.uniform(0.05, 1.0, 25)
    for sx, sy in ((1.5, 1.5), (2.0, 3.5), (6.0, 4.0)):
        ours = rasterise(x * 1.0, y * 1.0, d, np.full(25, sx), np.full(25, sy), (H, W))
        pts = np.zeros((H, W))
        np.add.at(pts, (y, x), d)
        ref = gaussian_filter(pts, (sy, sx), mode="constant", truncate=8.0)
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * ref.max())


def test_egd_layout_maps_match_scipy_and_prepare(tmp_path: Path) -> None:
    labels = dataset(tmp_path)
    sigma = 2.5
    # egd-cxr fixations.csv: one row per fixation, X/Y_ORIGINAL in original-image pixels
    # (negative = gaze off the image), FPOGD = duration in s; other published columns kept.
    fix = {
        "a": [(5, 6, 0.30), (20, 12, 0.12), (33, 25, 0.50)],
        "b": [(10, 20, 0.25), (-1, -1, 0.40), (39, 29, 0.20)],
        "c": [(15, 15, 1.0)],
        "d": [(2, 3, 0.2), (30, 4, 0.6)],
        "e": [(12, 22, 0.3)],
        "calib": [(960, 540, 0.5)],  # calibration image: not in the labels
    }  # "f" has no fixation
    lines = [
        "SESSION_ID,DICOM_ID,CNT,Time (in secs),FPOGX,FPOGY,FPOGS,FPOGD,FPOGID,FPOGV,X_ORIGINAL,Y_ORIGINAL"
    ]
    n = 0
    for key, rows in fix.items():
        for x, y, d in rows:
            n += 1
            lines.append(f"1,{key},{n},{n * 0.5},0.5,0.5,{n * 0.5},{d},{n},1,{x},{y}")
    (tmp_path / "fixations.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "manifest.csv"
    argv = ["import", "fixations", "--fixations",
            str(tmp_path / "fixations.csv"), "--labels", str(labels), "--images", str(tmp_path),
            "--out", str(out), "--sigma", str(sigma)]  # fmt: skip
    res = run_cli(argv, check=False, env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"fixation maps: 5 in {tmp_path / 'maps'}" in res.stdout
    err = res.stderr
    assert "1 of 10 fixation(s) fall outside their image: left out" in err
    assert "left out 1 fixation(s) on 1 image id(s) not in --labels (e.g. 'calib')" in err
    assert "1 labelled image(s) have no fixation inside the image (e.g. 'f')" in err
    rows = manifest_rows(out)
    assert rows["a"] == {"split": "train", "label": "0", "image": "files/pa/a.png",
                         "saliency": "maps/a.png", "subset": ""}  # fmt: skip
    assert rows["f"]["saliency"] == ""
    for key in "abcde":
        inside = [(x, y, d, sigma, sigma) for x, y, d in fix[key] if 0 <= x < W and 0 <= y < H]
        got, want = load(tmp_path / "maps" / f"{key}.png"), reference([inside])
        assert np.abs(got - want).max() <= 1, key
        assert got.max() == 255 and got.min() == 0
    # the imported manifest prepares (python -m salience prepare --manifest ... --out ...)
    assert main(["prepare", "--manifest", str(out), "--out", str(tmp_path / "prep"),
                 "--image-size", "16", "--cam-grids", "4"]) == 0  # fmt: skip
    prepared = PreparedDataset(tmp_path / "prep")
    assert prepared.index["has_map"].tolist() == [True] * 5 + [False]
    assert not list(tmp_path.glob(".tmp-*"))


def _reflacx(root: Path, readings: dict[str, tuple], discarded: str) -> Path:
    """REFLACX main_data/: metadata_phase_3.csv + one <id>/fixations.csv per reading."""
    main_data = root / "main_data"
    meta = [
        "id,split,eye_tracking_data_discarded,image,dicom_id,subject_id,image_size_x,image_size_y,Airway wall thickening"
    ]
    head = ("timestamp_start_fixation,timestamp_end_fixation,x_position,y_position,"
            "pupil_area_normalized,angular_resolution_x_pixels_per_degree,"
            "angular_resolution_y_pixels_per_degree,window_width,window_level,"
            "xmin_shown_from_image,ymin_shown_from_image,xmax_shown_from_image,ymax_shown_from_image,"
            "xmin_in_screen_coordinates,ymin_in_screen_coordinates,xmax_in_screen_coordinates,"
            "ymax_in_screen_coordinates")  # fmt: skip
    for rid, (dicom, grid, fixes) in readings.items():
        flag = "True" if rid == discarded else "False"
        meta.append(
            f"{rid},train,{flag},physionet.org/files/{dicom}.dcm,{dicom},1,{grid[0]},{grid[1]},False"
        )
        lines, t = [head], 0.0
        for x, y, d, ppd_x, ppd_y in fixes:
            lines.append(
                f"{t:.3f},{t + d:.3f},{x},{y},0.5,{ppd_x},{ppd_y},1,0.5,0,0,{grid[0]},{grid[1]},0,0,1920,1080"
            )
            t += d + 0.05
        (main_data / rid).mkdir(parents=True)
        (main_data / rid / "fixations.csv").write_text("\r\n".join(lines) + "\r\n")
    (main_data / "metadata_phase_3.csv").write_text("\r\n".join(meta) + "\r\n")
    return main_data / "metadata_phase_3.csv"


def test_reflacx_layout_readers_averaged_sigma_one_degree(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two readings of one image are averaged (each with unit mass); σ = 1° from each fixation's
    pixels per degree; a discarded reading is left out; a reading recorded on a 2× grid is scaled
    to the file."""
    labels = dataset(tmp_path)
    readings = {
        "P300R000001": ("a", (W, H), [(6, 7, 0.8, 2, 2), (30, 20, 0.3, 3, 2)]),
        "P300R000002": ("a", (W, H), [(25, 10, 0.4, 2, 3), (45, 10, 0.2, 2, 2)]),  # 2nd: off
        "P300R000003": ("b", (W, H), [(10, 10, 0.5, 4, 4)]),
        "P300R000004": ("c", (2 * W, 2 * H), [(40, 30, 0.5, 4, 6), (10, 50, 0.25, 6, 4)]),
        "P300R000005": ("d", (W, H), [(20, 20, 0.3, 2, 2)]),
        "P300R000006": ("e", (W, H), [(5, 5, 0.3, 2, 2)]),
        "P300R000007": ("f", (W, H), [(9, 9, 0.3, 2, 2)]),
        "P300R000008": ("e", (W, H), [(35, 25, 5.0, 2, 2)]),  # discarded
    }
    meta = _reflacx(tmp_path, readings, discarded="P300R000008")
    caplog.set_level(logging.WARNING)
    out, mdir, n = import_fixations([meta], labels, tmp_path / "manifest.csv", images=tmp_path)
    assert n == 6 and mdir == tmp_path / "maps"
    text = caplog.text
    assert "left out 1 REFLACX reading(s) marked eye_tracking_data_discarded" in text
    assert "1 of 10 fixation(s) fall outside their image: left out" in text
    assert "1 reading(s) were recorded on another image size" in text
    a = reference([[(6, 7, 0.8, 2, 2), (30, 20, 0.3, 3, 2)], [(25, 10, 0.4, 2, 3)]])
    assert np.abs(load(mdir / "a.png") - a).max() <= 1
    c = reference([[(20, 15, 0.5, 2, 3), (5, 25, 0.25, 3, 2)]])  # half the recorded grid
    assert np.abs(load(mdir / "c.png") - c).max() <= 1
    e = reference([[(5, 5, 0.3, 2, 2)]])  # without the discarded reading
    assert np.abs(load(mdir / "e.png") - e).max() <= 1
    argv = ["prepare", "--manifest", str(out), "--out", str(tmp_path / "prep"), "--image-size", "8"]
    assert main(argv) == 0
    assert PreparedDataset(tmp_path / "prep").index["has_map"].all()


def test_generic_layout_bad_rows_and_nothing_half_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labels = dataset(tmp_path)
    good = [f"{k},{x},{y},0.2" for k, x, y in (("a", 3, 4), ("b", 8, 9), ("c", 1, 1), ("d", 5, 5), ("e", 7, 7), ("f", 9, 2))]  # fmt: skip
    fx = tmp_path / "fix.csv"
    fx.write_text("image,x,y,duration,reader\n" + "\n".join(f"{g},r1" for g in good)
                  + "\na,10,10,-0.1,r2\nb,nan,3,0.2,r1\nc,4,4,,r2\nd,1,1,inf,r2,extra\na,12,12,0.3,r2\n")  # fmt: skip
    out = tmp_path / "manifest.csv"
    with pytest.raises(DataError, match="generic layout needs --sigma PX"):
        import_fixations([fx], labels, out, images=tmp_path)
    with pytest.raises(
        DataError,
        match=r"^4 fixation row\(s\) have a negative or NaN duration, or a NaN position or σ "
        r"\(first: .*fix.csv line 8: duration -0.1\); fix or remove them, or pass --skip-bad-rows",
    ):
        import_fixations([fx], labels, out, images=tmp_path, sigma=2.0)
    assert not out.exists() and not (tmp_path / "maps").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    # a folder the user made is never replaced
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="maps exists and is not a maps folder written by"):
        import_fixations([fx], labels, out, images=tmp_path, sigma=2.0, skip_bad_rows=True)
    assert (tmp_path / "maps" / "mine.txt").read_text() == "keep" and not out.exists()
    caplog.set_level(logging.WARNING)
    _, mdir, n = import_fixations([fx], labels, out, images=tmp_path, sigma=2.0,
                                  skip_bad_rows=True, maps_dir=tmp_path / "gaze")  # fmt: skip
    assert n == 6 and "left out 4 bad fixation row(s) (first: " in caplog.text
    # reader r1 and r2 on image a: averaged with equal weight
    a = reference([[(3, 4, 0.2, 2.0, 2.0)], [(12, 12, 0.3, 2.0, 2.0)]])
    assert np.abs(load(mdir / "a.png") - a).max() <= 1
    # rerun replaces our own maps folder; --outside clip moves an off-image fixation to the edge
    fx.write_text("image,x,y,duration\n" + "\n".join(good) + "\nb,-5,9,0.2\n")
    caplog.clear()
    import_fixations([fx], labels, out, images=tmp_path, sigma=2.0, outside="clip", maps_dir=mdir)
    assert "1 of 7 fixation(s) fall outside their image: moved to the nearest edge" in caplog.text
    b = reference([[(8, 9, 0.2, 2.0, 2.0), (0, 9, 0.2, 2.0, 2.0)]])
    assert np.abs(load(mdir / "b.png") - b).max() <= 1
    # a file the user put into our maps folder is never deleted by a rerun
    (mdir / "notes.txt").write_text("mine")
    with pytest.raises(
        DataError, match=r"gaze holds notes.txt, which is not part of a maps folder"
    ):
        import_fixations([fx], labels, out, images=tmp_path, sigma=2.0, maps_dir=mdir)
    assert (mdir / "notes.txt").read_text() == "mine"
    (mdir / "notes.txt").unlink()
    # --weight count: every fixation weighs 1, whatever its duration
    fx.write_text("image,x,y,duration\n" + "\n".join(good) + "\na,20,20,5.0\n")
    import_fixations([fx], labels, out, images=tmp_path, sigma=2.0, weight="count", maps_dir=mdir)
    a = reference([[(3, 4, 1.0, 2.0, 2.0), (20, 20, 1.0, 2.0, 2.0)]])
    assert np.abs(load(mdir / "a.png") - a).max() <= 1


REFLACX_ONE = "timestamp_start_fixation,timestamp_end_fixation,x_position,y_position\n0,1,2,3\n"
RLE = {
    "images": [{"id": 1, "file_name": "a.png"}],
    "annotations": [{"id": 7, "image_id": 1, "segmentation": {"counts": "x", "size": [3, 4]}}],
}
# (case, kind, file content, extra arguments, the documented line in docs/data.md; F = the file)
BAD = [
    ("reflacx-reading-file", "fixations", REFLACX_ONE, [],
     "F: this is one REFLACX reading's fixations.csv; give the metadata_phase_<n>.csv beside the "
     "reading folders instead (--fixations main_data/metadata_phase_3.csv)"),
    ("unknown-columns", "fixations", "img,px,py\na,1,2\n", [],
     "F: columns img, px, py match no known layout: egd-cxr fixations.csv (DICOM_ID, X_ORIGINAL, "
     "Y_ORIGINAL, FPOGD), REFLACX metadata (id, dicom_id, image_size_x, image_size_y) or generic "
     "(image,x,y,duration[,reader])"),
    ("generic-no-sigma", "fixations", "image,x,y,duration\na,1,1,1\n", [],
     "F: the generic layout needs --sigma PX (one degree of visual angle in image pixels at your "
     "viewing distance and zoom; see docs/decisions.md)"),
    ("forced-layout-columns", "fixations", "image,x,y,duration\na,1,1,1\n", ["--layout", "egd"],
     "F line 1: no column(s) DICOM_ID, X_ORIGINAL, Y_ORIGINAL, FPOGD for layout egd"),
    ("ids-match-nothing", "fixations", "image,x,y,duration\nzz,1,1,1\n", ["--sigma", "2"],
     "no labelled image got a map; check that the image ids in --labels match the ids in the "
     "fixation or annotation file"),
    ("rle", "regions", json.dumps(RLE), [],
     "F: annotation 7: RLE segmentation is not supported; export polygons (or boxes) instead"),
    ("inverted-box", "regions", "image,x_min,y_min,x_max,y_max\na,5,5,2,9\n", [],
     "F line 2: box ['5', '5', '2', '9'] is not x_min ≤ x_max, y_min ≤ y_max numbers; fix the row "
     "(leave all four empty for 'nothing drawn')"),
    ("box-columns", "regions", "image,x_min,y_min,x_max\na,5,5,2\n", [],
     "F line 1: no column(s) y_max; a box CSV has image,x_min,y_min,x_max,y_max (pixels)"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "content", "extra", "expect"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])  # fmt: skip
def test_bad_input_one_documented_line_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, content: str, extra: list, expect: str
) -> None:
    """Exit status 2, one `error:` line exactly as docs/data.md lists it, no file added."""
    labels = dataset(tmp_path)
    f = tmp_path / ("ann.json" if content.startswith("{") else "in.csv")
    f.write_text(content)
    before = set(tmp_path.rglob("*"))
    flag = "--fixations" if kind == "fixations" else "--annotations"
    argv = ["import", kind, flag, str(f), "--labels", str(labels), "--images", str(tmp_path),
            "--out", str(tmp_path / "m.csv"), *extra]  # fmt: skip
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    want = str(f) + expect[1:] if expect.startswith("F") else expect
    assert lines[-1] == "error: " + want
    assert set(tmp_path.rglob("*")) == before
    assert expect in (REPO / "docs" / "data.md").read_text()


def test_labelled_image_without_file(tmp_path: Path) -> None:
    labels = dataset(tmp_path)
    labels.write_text(labels.read_text() + "g,test,1,\n")
    (tmp_path / "f.csv").write_text("image,x,y,duration\na,1,1,1\n")
    with pytest.raises(
        DataError, match=r"--labels line 8: no image file named g.png/.jpg/... under"
    ):
        import_fixations([tmp_path / "f.csv"], labels, tmp_path / "m.csv", images=tmp_path, sigma=1)
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    (tmp_path / "f.csv").write_text("image,x,y,duration\nzz,1,1,1\n")
    with pytest.raises(DataError, match="^no labelled image got a map; check that the image ids"):
        import_fixations([tmp_path / "f.csv"], labels, tmp_path / "m.csv", images=tmp_path, sigma=1)
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "maps").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    # a path column (relative to the label CSV) needs no --images; without either: one line
    rows = [f"{k},{s},{lab},files/p{k}/{k}.png" for k, s, lab in IDS]
    (tmp_path / "lab2.csv").write_text("image,split,label,path\n" + "\n".join(rows) + "\n")
    (tmp_path / "f.csv").write_text("image,x,y,duration\nb,1,1,1\n")
    out, _, n = import_fixations(
        [tmp_path / "f.csv"], tmp_path / "lab2.csv", tmp_path / "m.csv", sigma=1
    )
    assert n == 1 and manifest_rows(out)["b"]["image"] == "files/pb/b.png"
    with pytest.raises(DataError, match=r"^no --images given; give the folder holding the image"):
        import_fixations([tmp_path / "f.csv"], labels, tmp_path / "m.csv", sigma=1)


def inside_polygon(poly: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside or on the polygon (crossing number + edge test)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    inside = np.zeros(shape, bool)
    on_edge = np.zeros(shape, bool)
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < xint)
        cross = (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)
        within = (
            (np.minimum(x0, x1) <= xs)
            & (xs <= max(x0, x1))
            & (np.minimum(y0, y1) <= ys)
            & (ys <= max(y0, y1))
        )
        on_edge |= (np.abs(cross) < 1e-9) & within
    return inside | on_edge


def test_regions_coco_and_box_csv_then_prepare(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    labels = dataset(tmp_path)
    tri = [4.0, 4.0, 30.0, 6.0, 12.0, 25.0]
    coco = {
        "images": [
            {"id": i, "file_name": f"{k}.png", "width": W, "height": H}
            for i, (k, _, _) in enumerate(IDS)
        ]  # fmt: skip
        + [{"id": 99, "file_name": "zz.png", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 0, "segmentation": [tri], "bbox": [4, 4, 26, 21], "iscrowd": 0},
            # drawn on a 2× copy: scaled to the file, the box [10, 5, 12, 8]
            {"id": 2, "image_id": 1, "segmentation": [], "bbox": [20, 10, 24, 16], "iscrowd": 0},
            {"id": 3, "image_id": 2, "segmentation": [[30, 20, 50, 20, 50, 40, 30, 40]]},
            {"id": 4, "image_id": 99, "bbox": [1, 1, 2, 2]},
        ],
        "categories": [{"id": 1, "name": "lesion"}],
    }
    coco["images"][1].update(width=2 * W, height=2 * H)
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    # VinDr-CXR-style box CSV: image_id, one row per box and reader; empty = "No finding"
    (tmp_path / "boxes.csv").write_text(
        "image_id,class_name,rad_id,x_min,y_min,x_max,y_max\n"
        "d,Nodule,R1,2,3,9,8\nd,Nodule,R2,20.0,10.0,35.0,28.0\ne,No finding,R1,,,,\n"
    )
    caplog.set_level(logging.WARNING)
    out, mdir = tmp_path / "manifest.csv", tmp_path / "maps"
    argv = ["import", "regions", "--annotations", str(tmp_path / "ann.json"), "--annotations",
            str(tmp_path / "boxes.csv"), "--labels", str(labels), "--images", str(tmp_path),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    # a, b, c (clipped), d; e: nothing drawn; f: not annotated
    assert f"region maps: 4 in {mdir}" in capsys.readouterr().out
    assert "1 region(s) reach outside their image: clipped to the image" in caplog.text
    assert "1 image(s) are stored at another size than the annotation file says" in caplog.text
    assert "2 labelled image(s) have no region inside the image (e.g. 'e')" in caplog.text
    assert "left out the regions of 1 image id(s) not in --labels (e.g. 'zz')" in caplog.text
    want_a = inside_polygon(list(zip(tri[0::2], tri[1::2])), (H, W))
    got_a = load(mdir / "a.png")
    assert set(np.unique(got_a)) == {0, 255}
    # PIL and the centre test may differ only on pixels the polygon's edges pass through
    assert (got_a.astype(bool) != want_a).sum() <= 2 * (26 + 21)
    assert (got_a.astype(bool) & ~want_a).sum() <= 26 + 21 + 19
    box_b = np.zeros((H, W), bool)
    box_b[5:14, 10:23] = True  # [x, y, w, h] = [10, 5, 12, 8]: columns 10…22, rows 5…13
    assert (load(mdir / "b.png").astype(bool) == box_b).all()
    box_c = np.zeros((H, W), bool)
    box_c[20:, 30:] = True
    assert (load(mdir / "c.png").astype(bool) == box_c).all()
    box_d = np.zeros((H, W), bool)
    box_d[3:9, 2:10] = True
    box_d[10:29, 20:36] = True  # two readers' boxes: union
    assert (load(mdir / "d.png").astype(bool) == box_d).all()
    rows = manifest_rows(out)
    assert rows["e"]["saliency"] == rows["f"]["saliency"] == ""
    assert main(["prepare", "--manifest", str(out), "--out", str(tmp_path / "prep"),
                 "--image-size", "10"]) == 0  # fmt: skip
    assert PreparedDataset(tmp_path / "prep").index["has_map"].sum() == 4
    # softening: scipy's gaussian_filter of the binary map, min-max
    _, mdir2, _ = import_regions([tmp_path / "boxes.csv", tmp_path / "ann.json"], labels,
                                 tmp_path / "m2.csv", images=tmp_path, sigma=1.5,
                                 maps_dir=tmp_path / "soft")  # fmt: skip
    soft = gaussian_filter(box_d.astype(float), 1.5, mode="constant")
    want = np.rint((soft - soft.min()) * 255 / (soft.max() - soft.min()))
    assert np.abs(load(mdir2 / "d.png") - want).max() <= 1


def test_regions_refuse_rle_and_bad_boxes(tmp_path: Path) -> None:
    labels = dataset(tmp_path)
    coco = {"images": [{"id": 1, "file_name": "a.png"}],
            "annotations": [{"id": 7, "image_id": 1, "segmentation": {"counts": "abc", "size": [H, W]}, "iscrowd": 1}]}  # fmt: skip
    (tmp_path / "rle.json").write_text(json.dumps(coco))
    with pytest.raises(
        DataError, match="rle.json: annotation 7: RLE segmentation is not supported"
    ):
        import_regions([tmp_path / "rle.json"], labels, tmp_path / "m.csv", images=tmp_path)
    (tmp_path / "b.csv").write_text("image,x_min,y_min,x_max,y_max\na,5,5,2,9\n")
    with pytest.raises(DataError, match=r"b.csv line 2: box \['5', '5', '2', '9'\] is not x_min"):
        import_regions([tmp_path / "b.csv"], labels, tmp_path / "m.csv", images=tmp_path)
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "maps").exists()


@pytest.mark.parametrize("kind", ["fixations", "regions", "labels"])
def test_non_utf8_inputs_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    """A UTF-16 export of a spreadsheet (fixations or box CSV) or a Latin-1 label CSV: the same
    one-line error as a manifest (salience.data.manifest.read_csv_text), exit 2, nothing written."""
    labels = dataset(tmp_path)
    f = tmp_path / "in.csv"
    if kind == "fixations":
        f.write_text("image,x,y,duration\na,1,1,1\n", encoding="utf-16")
    else:
        f.write_text("image,x_min,y_min,x_max,y_max\na,1,1,3,3\n", encoding="utf-16")
    if kind == "labels":
        f.write_text("image,x,y,duration\na,1,1,1\n")
        labels.write_bytes(labels.read_bytes() + "z\xe9,test,1,\n".encode("latin-1"))
    before = set(tmp_path.rglob("*"))
    flag = "--annotations" if kind == "regions" else "--fixations"
    argv = ["import", "regions" if kind == "regions" else "fixations", flag, str(f),
            "--labels", str(labels), "--images", str(tmp_path), "--out", str(tmp_path / "m.csv"),
            "--sigma", "1"]  # fmt: skip
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    bad = labels if kind == "labels" else f
    want = "not UTF-8 (byte 0xe9)" if kind == "labels" else "UTF-16 text"
    assert lines[-1].startswith(f"error: {bad}") and want in lines[-1], lines
    assert set(tmp_path.rglob("*")) == before
