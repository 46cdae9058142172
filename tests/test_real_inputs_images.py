"""Issue 10, items 8–10: images and maps of the kinds real datasets ship, written as real files.

- EXIF orientation (phone JPEGs): image and map must line up after `prepare`.
- Bit depth: 12-bit X-rays in 16-bit PNGs, 16-bit maps with a small range, intermediate map levels.
- Sparse fixation maps on the CAM grid: area pooling keeps every fixation; a map constant on the
  grid has no map there (one warning line).
"""

from __future__ import annotations

import csv
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import run_cli
from PIL import Image

from salience.data.loader import BatchStream
from salience.data.prepare import prepare
from salience.data.prepared import PreparedDataset, resize_map
from salience.errors import DataError
from salience.methods.base import build_method, import_all
from salience.models.base import build_backbone

import_all()


# ------------------------------------------------------------------------------------- helpers
def write_dataset(root: Path, rows: list[tuple[str, str]]) -> Path:
    """A manifest whose train split holds `rows` (image, map) with alternating labels, plus small
    filler rows so that every split has both classes. Returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    table = [("train", str(i % 2), img, hmap) for i, (img, hmap) in enumerate(rows)]
    if len(rows) < 2:
        table.append(("train", "1", "fill/train.png", ""))
    for split in ("val", "test"):
        for label in (0, 1):
            table.append((split, str(label), f"fill/{split}{label}.png", ""))
    (root / "fill").mkdir(exist_ok=True)
    fillers = [img for _, _, img, _ in table if img.startswith("fill/")]
    for k, img in enumerate(fillers):  # distinct pictures: one picture in two splits is refused
        Image.fromarray(np.full((8, 8), 90 + 7 * k, np.uint8)).save(root / img)
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "label", "image", "saliency"])
        w.writerows(table)
    return root / "manifest.csv"


def save_jpeg_with_orientation(displayed: Image.Image, path: Path, orientation: int) -> None:
    """Store `displayed` as a camera would: raw pixels unrotated plus an EXIF orientation tag that
    tells a viewer how to turn them back into `displayed`."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    raw = displayed.transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw.save(path, "JPEG", quality=95, exif=exif)
    reread = Image.open(path)
    assert reread.getexif()[0x0112] == orientation and reread.size == raw.size


def block_scene(w: int, h: int) -> tuple[Image.Image, Image.Image]:
    """A displayed RGB image with one bright block in its top-left part, and the human map an
    annotator drew on that displayed image (the same block)."""
    a = np.full((h, w), 40, np.uint8)
    a[: h // 2, : w // 3] = 220
    m = np.zeros((h, w), np.uint8)
    m[: h // 2, : w // 3] = 255
    return Image.fromarray(np.stack([a] * 3, axis=2)), Image.fromarray(m)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, float((a | b).sum()))


# ------------------------------------------------------------------- item 8: EXIF orientation
@pytest.mark.parametrize("w,h", [(48, 48), (64, 40)], ids=["square", "non-square"])
def test_exif_orientation_6_image_lines_up_with_its_map(
    tmp_path: Path, caplog, w: int, h: int
) -> None:
    ds = tmp_path / "ds"
    (ds / "img").mkdir(parents=True)
    (ds / "maps").mkdir()
    displayed, hmap = block_scene(w, h)
    save_jpeg_with_orientation(displayed, ds / "img/phone.jpg", 6)
    hmap.save(ds / "maps/phone.png")  # drawn on the displayed image, stored as displayed
    manifest = write_dataset(ds, [("img/phone.jpg", "maps/phone.png")])
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 32, [4]))
    assert "map is" not in caplog.text  # image and map have the same displayed size
    img = d.images[0].astype(np.float32).mean(axis=2)
    assert iou(img > 130, d.maps[0] > 127) > 0.9  # pixel alignment of image and map
    ref = np.asarray(displayed.resize((32, 32), Image.BILINEAR), np.float32).mean(axis=2)
    assert np.abs(img - ref).mean() < 4  # the image is the displayed one (JPEG noise only)
    assert d.meta["decode"]["exif_oriented"] == 1
    assert d.meta["source"]["image_sizes"] == {f"{w}x{h}": 1, "8x8": 5}


def test_exif_orientation_8_on_the_map_and_map_drawn_on_stored_pixels(
    tmp_path: Path, caplog
) -> None:
    """Sibling: the *map* carries the EXIF tag (a phone photo of the annotation); and a map drawn
    on a turned image's stored pixels gets a warning that names the orientation."""
    ds = tmp_path / "ds"
    (ds / "img").mkdir(parents=True)
    (ds / "maps").mkdir()
    displayed, hmap = block_scene(60, 36)
    displayed.save(ds / "img/a.png")
    save_jpeg_with_orientation(hmap.convert("L"), ds / "maps/a.jpg", 8)
    save_jpeg_with_orientation(displayed, ds / "img/b.jpg", 6)
    hmap.transpose(Image.Transpose.ROTATE_90).save(ds / "maps/b.png")  # on the stored pixels
    # a 16-bit scanner TIFF with the orientation in its own tag (PIL turns TIFFs while loading)
    raw16 = (np.asarray(displayed.convert("L"), np.uint16) * 16).T[::-1]  # = stored pixels, tag 6
    Image.fromarray(np.ascontiguousarray(raw16)).save(ds / "img/c.tif", tiffinfo={274: 6})
    hmap.save(ds / "maps/c.png")
    manifest = write_dataset(
        ds,
        [("img/a.png", "maps/a.jpg"), ("img/b.jpg", "maps/b.png"), ("img/c.tif", "maps/c.png")],
    )
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 24, [4]))
    for row in (0, 2):
        img = d.images[row].astype(np.float32).mean(axis=2)
        assert iou(img > 130, d.maps[row] > 127) > 0.9
    assert d.meta["decode"]["exif_oriented"] == 2  # b.jpg and c.tif (maps are not counted)
    assert (
        f"{manifest} line 3: maps/b.png: map is 36×60 but its image is 60×36; the image's EXIF "
        f"orientation 6 turns it, and maps are taken as drawn on the displayed image; resized to "
        f"24×24 like the image (check that the map belongs to this image)"
    ) in caplog.text


# ------------------------------------------------------------------------ item 9: bit depth
def test_12bit_xray_in_16bit_png_keeps_its_grey_levels(tmp_path: Path, caplog) -> None:
    ds = tmp_path / "ds"
    (ds / "img").mkdir(parents=True)
    ramp = np.linspace(0, 4095, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(ds / "img/xray.png")
    ten = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 1024).astype(np.uint16)
    Image.fromarray(ten).save(ds / "img/ten.tif")  # sibling: 10-bit data in a 16-bit TIFF
    assert Image.open(ds / "img/xray.png").mode == "I;16"
    assert Image.open(ds / "img/ten.tif").mode == "I;16"
    manifest = write_dataset(ds, [("img/xray.png", ""), ("img/ten.tif", "")])
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 32))
    grey = d.images[0][:, :, 0]
    assert np.array_equal(grey, np.round(ramp / 4095.0 * 255.0).astype(np.uint8))
    assert len(np.unique(grey)) == 256  # was 17 when scaled by the 16-bit type range
    assert (d.images[0] == grey[:, :, None]).all()
    assert np.array_equal(d.images[1][:, :, 0], np.round(ten / 1023.0 * 255.0).astype(np.uint8))
    assert d.meta["decode"]["scaled_bits"] == {"10": 1, "12": 1}
    assert (
        "image_bits auto scaled the >8-bit images by their observed maxima: 1 as 10-bit, 1 as "
        "12-bit; set the dataset's image_bits (prepare --image-bits) to the sensor's bit depth to "
        "scale them all alike"
    ) in caplog.text
    # the switch: one declared bit depth for the whole dataset
    d16 = PreparedDataset(prepare(manifest, tmp_path / "p16", 32, image_bits=16))
    assert np.array_equal(d16.images[0][:, :, 0], np.round(ramp / 65535.0 * 255.0).astype(np.uint8))
    with pytest.raises(DataError) as exc:
        prepare(manifest, tmp_path / "p10", 32, image_bits=10)
    assert str(exc.value).startswith(
        f"{manifest} line 2: img/xray.png: pixel value 4095 exceeds the 10-bit range set by "
        f"image_bits 10; set image_bits to the sensor's bit depth or 'auto'; re-export the file or "
        f"remove the row"
    )
    assert not (tmp_path / "p10").exists()
    # signed integer data (a 32-bit TIFF with negative values) has no bit-depth reading: an error
    Image.fromarray(ten.astype(np.int32) - 3).save(ds / "img/ten.tif")
    with pytest.raises(DataError) as exc:
        prepare(manifest, tmp_path / "pneg", 32)
    assert str(exc.value) == (
        f"{manifest} line 3: img/ten.tif: I image has negative pixel values (min -3); store it as "
        f"unsigned integers; re-export the file or remove the row"
    )


def test_16bit_maps_keep_their_own_range_and_levels(tmp_path: Path, caplog) -> None:
    ds = tmp_path / "ds"
    (ds / "maps").mkdir(parents=True)
    Image.fromarray(np.full((24, 24), 128, np.uint8)).save(ds / "img.png")
    small = np.zeros((24, 24), np.uint16)
    small[4:12, 6:18] = 100  # a 16-bit map holding 0..100
    small[12:16, 6:18] = 50
    three = np.zeros((24, 24), np.uint16)
    three[:, 8:16] = 128
    three[:, 16:] = 255  # 0/128/255 levels in a 16-bit file
    eight = three.astype(np.uint8)  # the same levels in an 8-bit map
    Image.fromarray(small).save(ds / "maps/small.png")
    Image.fromarray(three).save(ds / "maps/three.png")
    Image.fromarray(eight).save(ds / "maps/eight.png")
    assert Image.open(ds / "maps/small.png").mode == "I;16"
    manifest = write_dataset(
        ds,
        [
            ("img.png", "maps/small.png"),
            ("img.png", "maps/three.png"),
            ("img.png", "maps/eight.png"),
        ],
    )
    # the same image three times is fine for prepare; only image paths must differ
    text = manifest.read_text().splitlines()
    for i, name in ((1, "a"), (2, "b"), (3, "c")):
        (ds / f"{name}.png").write_bytes((ds / "img.png").read_bytes())
        text[i] = text[i].replace("img.png", f"{name}.png", 1)
    manifest.write_text("\n".join(text) + "\n")
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 24, [3]))
    assert "carries no saliency" not in caplog.text
    assert d.index["has_map"].tolist()[:3] == [True, True, True]
    assert np.array_equal(d.maps[0], np.round(small / 100.0 * 255.0).astype(np.uint8))
    assert sorted(np.unique(d.maps[1])) == [0, 128, 255]
    assert np.array_equal(d.maps[1], d.maps[2])  # 16-bit and 8-bit files give the same map
    # on the grid the three 8-pixel-wide bands are three cells: their levels stay distinct
    assert np.allclose(d.maps_cam(3)[2][0], [0.0, 128 / 255, 1.0])


def test_float_map_levels_and_nan(tmp_path: Path) -> None:
    """Sibling: 32-bit float TIFF maps keep small ranges; a NaN pixel is one line, exit 2 via CLI."""
    ds = tmp_path / "ds"
    (ds / "maps").mkdir(parents=True)
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(ds / "img.png")
    f = np.zeros((16, 16), np.float32)
    f[:, 4:8], f[:, 8:] = 0.003, 0.01
    Image.fromarray(f).save(ds / "maps/f.tif")
    assert Image.open(ds / "maps/f.tif").mode == "F"
    manifest = write_dataset(ds, [("img.png", "maps/f.tif")])
    d = PreparedDataset(prepare(manifest, tmp_path / "prep", 16))
    assert sorted(np.unique(d.maps[0])) == [0, 76, 255]  # 0.003/0.01 → 76.5 → 76 (round half even)
    f[3, 3] = np.nan
    Image.fromarray(f).save(ds / "maps/f.tif")
    before = sorted(tmp_path.rglob("*"))
    proc = run_cli(
        [
            "prepare",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "p2"),
            "--image-size",
            "16",
        ],
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {manifest} line 2: maps/f.tif: saliency map holds 1 NaN or infinite pixel "
        f"value(s); re-export the map or empty the saliency cell"
    )
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def write_png_16bit_colour(path: Path, a: np.ndarray) -> None:
    """Write an H×W×3 uint16 array as a 48-bit PNG (PIL cannot write these; filter 0 rows)."""
    h, w, _ = a.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_16bit_colour_png_with_12bit_data_is_refused(tmp_path: Path) -> None:
    """Sibling on another path: PIL decodes 16-bit colour PNGs to their high byte, so 12-bit data
    would keep 16 levels (and a 16-bit colour map holding 0–100 would be all zero)."""
    ds = tmp_path / "ds"
    ds.mkdir()
    a = np.zeros((8, 10, 3), np.uint16)
    a[..., 0] = np.arange(10) * 400  # 0..3600: 12-bit data
    write_png_16bit_colour(ds / "x.png", a)
    full = a.copy()
    full[..., 1] = 65535  # full-range 16-bit colour: the high byte is its 8-bit value
    write_png_16bit_colour(ds / "full.png", full)
    manifest = write_dataset(ds, [("full.png", ""), ("x.png", "")])
    with pytest.raises(DataError) as exc:
        prepare(manifest, tmp_path / "prep", 8)
    assert str(exc.value) == (
        f"{manifest} line 3: x.png: 16-bit colour PNG whose values fit in 12 bits: PIL reads only "
        f"the high byte of each channel, which leaves 15 level(s); save it as 16-bit greyscale or "
        f"8-bit colour; re-export the file or remove the row"
    )
    assert not (tmp_path / "prep").exists()
    (ds / "full2.png").write_bytes((ds / "full.png").read_bytes())
    manifest = write_dataset(ds, [("full.png", ""), ("full2.png", "x.png")])
    with pytest.raises(DataError, match="line 3: x.png: 16-bit colour PNG whose values fit in 12"):
        prepare(manifest, tmp_path / "prep", 8)  # the same as a map


# -------------------------------------------------------------- item 10: sparse maps on grids
def dots_dataset(root: Path, n: int, src: int, dots: list[list[tuple[int, int]]]) -> Path:
    (root / "img").mkdir(parents=True)
    (root / "maps").mkdir()
    Image.fromarray(np.full((src, src), 100, np.uint8)).save(root / "img/base.png")
    rows = []
    for i in range(n):
        (root / f"img/{i:02d}.png").write_bytes((root / "img/base.png").read_bytes())
        m = np.zeros((src, src), np.uint8)
        for y, x in dots[i]:
            m[y, x] = 255
        Image.fromarray(m).save(root / f"maps/{i:02d}.png")
        rows.append((f"img/{i:02d}.png", f"maps/{i:02d}.png"))
    return write_dataset(root, rows)


def test_sparse_fixation_maps_survive_the_cam_grid(tmp_path: Path, caplog) -> None:
    """The issue's instance: 40 maps of three fixation dots each, at 448 px, prepared at 224 px and
    shrunk to a 7×7 CAM grid (a bilinear resize in uint8 left 35 of the 40 grid maps all zero)."""
    rng = np.random.default_rng(0)
    dots = [[tuple(int(v) for v in rng.integers(0, 448, 2)) for _ in range(3)] for _ in range(40)]
    manifest = dots_dataset(tmp_path / "ds", 40, 448, dots)
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 224, [7]))
    assert "constant on the" not in caplog.text
    cam = d.maps_cam(7)
    assert int((cam[:40].reshape(40, -1).max(axis=1) == 0).sum()) == 0
    for i in range(40):
        # input resolution (SAGE/Boyd maps): every fixation keeps mass in its 2×2 source block
        assert all(d.maps[i][y // 2, x // 2] > 0 for y, x in dots[i])
        # CAM grid: every fixation's cell is non-zero
        assert cam[i].max() == 1.0
        assert all(cam[i][y // 64, x // 64] > 0 for y, x in dots[i])
    assert d.has_map_cam(7)[:40].all()
    # the reader's derived grid (not prepared) is the same function of maps.npy
    derived = PreparedDataset(prepare(manifest, tmp_path / "plain", 224)).maps_cam(7)
    assert np.array_equal(derived, cam)


def test_map_constant_on_the_grid_has_no_map_there(tmp_path: Path, caplog) -> None:
    """Sibling: one equal dot in every grid cell is a real map at input resolution but constant on
    the grid; such rows have no map at that grid, reported in ONE line (count, two examples)."""
    even = [(y * 8 + 3, x * 8 + 5) for y in range(7) for x in range(7)]
    dots = [even, even, even, [(3, 3)]]
    manifest = dots_dataset(tmp_path / "ds", 4, 56, dots)
    with caplog.at_level(logging.WARNING):
        d = PreparedDataset(prepare(manifest, tmp_path / "prep", 56, [7]))
    line = (
        f"3 saliency map(s) are constant on the 7×7 CAM grid (e.g. {manifest} line 2: maps/00.png, "
        f"{manifest} line 3: maps/01.png); those rows have no map at that grid (CAM losses and "
        f"CAM–human agreement skip them). Use a finer cam grid or denser maps if this is unexpected"
    )
    assert caplog.text.count("constant on the 7×7 CAM grid") == 1 and line in caplog.text
    assert d.meta["warnings"] == {"map constant on the 7x7 CAM grid (no map at that grid)": 3}
    assert d.index["has_map"].tolist()[:4] == [True] * 4  # input-resolution maps are real
    assert d.has_map_cam(7)[:4].tolist() == [False, False, False, True]
    # the reader computing an unprepared grid says the same, once
    caplog.clear()
    plain = PreparedDataset(prepare(manifest, tmp_path / "plain", 56))
    with caplog.at_level(logging.WARNING):
        assert plain.has_map_cam(7)[:4].tolist() == [False, False, False, True]
    assert caplog.text.count("3 saliency map(s) are constant on the 7×7 CAM grid") == 1
    # the training batch carries the per-grid flag, and a CAM-grid loss skips those rows
    # (smallcnn at 56 px has a 7×7 CAM grid)
    batch = next(iter(BatchStream(d, np.arange(4), 4, cam_grid=7)))
    assert batch["has_map"].tolist() == [True] * 4
    assert batch["has_map_cam"].tolist() == [False, False, False, True]
    cyborg = build_method("cyborg")
    torch.manual_seed(0)
    model = cyborg.build_model(build_backbone("smallcnn", weights="none"), cam_layer="pooled")
    lost = next(iter(BatchStream(d, np.arange(3), 3, cam_grid=7)))
    assert cyborg.loss(model, lost).parts["saliency"].item() == 0.0  # CE only, as without maps
    assert cyborg.loss(model, batch).parts["saliency"].item() > 0.0


def test_map_pooling_is_area_mean_as_torch_and_pil() -> None:
    """resize_map = area mean pooling then min-max: torch's adaptive_avg_pool2d for integer
    factors, PIL's BOX filter otherwise; a single fixation always lands in exactly one cell."""
    rng = np.random.default_rng(1)
    m = (rng.random((224, 224)) ** 4 * 255).round().astype(np.uint8)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(m.astype(np.float32))[None, None], 7)[0, 0].numpy()
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(resize_map(m, 7), ref, atol=1e-6)
    box = Image.fromarray(m.astype(np.float32)).resize((9, 9), Image.BOX)
    box = np.asarray(box, np.float32)
    np.testing.assert_allclose(
        resize_map(m, 9), (box - box.min()) / (box.max() - box.min()), atol=1e-6
    )
    for y, x in rng.integers(0, 50, (20, 2)):
        dot = np.zeros((50, 50), np.uint8)
        dot[y, x] = 255
        g = resize_map(dot, 7)
        assert (g > 0).sum() == 1 and g.max() == 1.0
