"""Drawn regions (polygons, boxes) → human saliency maps (`python -m salience import regions`).

Annotators often draw instead of looking: CYBORG's and Boyd et al.'s maps were hand-drawn
regions. Two inputs:

- COCO-style JSON (`images[]` with `id`, `file_name`, `width`, `height`; `annotations[]` with
  `image_id`, `segmentation` as polygon lists `[[x1, y1, x2, y2, ...], ...]`, and `bbox`
  `[x, y, w, h]` used when there is no polygon). RLE masks are refused (one line).
- a box CSV `image,x_min,y_min,x_max,y_max` (`image_id` is accepted for `image`, as in
  VinDr-CXR's annotations; a row with all four coordinates empty means "nothing drawn").

Every region of an image (all annotators) is filled into one binary map with PIL.ImageDraw
(pixel (row r, column c) at (x=c, y=r), edges included), optionally softened with
`scipy.ndimage.gaussian_filter(σ px, mode="constant")`, then min-max to 0…255.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from salience.data.manifest import read_csv_dicts
from salience.data.mapimport import (
    Labelled,
    locate_images,
    read_labels,
    to_uint8,
    write_output,
)
from salience.errors import DataError

log = logging.getLogger(__name__)

Polygon = list[tuple[float, float]]


def _box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def read_coco(
    path: Path,
) -> tuple[dict[str, list[Polygon]], dict[str, tuple[float, float]]]:
    """{file stem: polygons}, {file stem: (width, height) the coordinates refer to}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not readable as JSON ({exc}); give a COCO annotation file"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{path}: no 'images' list; this is not a COCO annotation file")
    names, grids = {}, {}
    for im in doc["images"]:
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{path}: an entry of 'images' lacks id or file_name: {im!r:.80}")
        names[im["id"]] = Path(str(im["file_name"])).stem
        if im.get("width") and im.get("height"):
            grids[names[im["id"]]] = (float(im["width"]), float(im["height"]))
    regions: dict[str, list[Polygon]] = defaultdict(list)
    for ann in doc.get("annotations", []):
        here = f"{path}: annotation {ann.get('id', '?')}"
        if ann.get("image_id") not in names:
            raise DataError(f"{here}: image_id {ann.get('image_id')!r} is not in 'images'")
        key, seg = names[ann["image_id"]], ann.get("segmentation")
        if isinstance(seg, dict):
            raise DataError(
                f"{here}: RLE segmentation is not supported; export polygons (or boxes) instead"
            )
        polys = [p for p in (seg or []) if isinstance(p, list) and len(p) >= 6]
        if polys:
            for p in polys:
                if len(p) % 2 or not all(isinstance(v, (int, float)) for v in p):
                    raise DataError(f"{here}: a polygon must be [x1, y1, x2, y2, ...] numbers")
                regions[key].append(list(zip(p[0::2], p[1::2])))
        elif isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4:
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not (w >= 0 and h >= 0):
                raise DataError(f"{here}: bbox {ann['bbox']} has a negative or NaN size")
            regions[key].append(_box(x, y, x + w, y + h))
        else:
            raise DataError(f"{here}: neither a polygon segmentation nor a bbox [x, y, w, h]")
    return dict(regions), grids


def read_box_csv(path: Path) -> dict[str, list[Polygon]]:
    """{image id: boxes} from `image,x_min,y_min,x_max,y_max` (or `image_id`)."""
    if not path.is_file():
        raise DataError(f"{path}: box CSV not found; check the path")
    reader = read_csv_dicts(path)
    header = [h.strip() for h in reader.fieldnames or []]
    rows = list(reader)
    img_c = "image" if "image" in header else "image_id"
    need = (img_c, "x_min", "y_min", "x_max", "y_max")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(
            f"{path} line 1: no column(s) {', '.join(missing)}; a box CSV has "
            f"image,x_min,y_min,x_max,y_max (pixels)"
        )
    regions: dict[str, list[Polygon]] = defaultdict(list)
    for lineno, r in enumerate(rows, start=2):
        cells = [(r.get(c) or "").strip() for c in need[1:]]
        key = (r.get(img_c) or "").strip()
        if not any(cells):
            regions.setdefault(key, [])  # "no finding": the image was annotated, nothing drawn
            continue
        try:
            x0, y0, x1, y1 = (float(c) for c in cells)
        except ValueError:
            x0 = y0 = x1 = y1 = math.nan
        if not (x1 >= x0 and y1 >= y0):
            raise DataError(
                f"{path} line {lineno}: box {cells} is not x_min ≤ x_max, y_min ≤ y_max numbers; "
                f"fix the row (leave all four empty for 'nothing drawn')"
            )
        regions[key].append(_box(x0, y0, x1, y1))
    return dict(regions)


def read_annotations(
    annotations: list[str | os.PathLike],
) -> tuple[dict[str, list[Polygon]], dict[str, tuple[float, float]]]:
    """Regions of every file (`.json` = COCO, else box CSV) by image id, and the COCO grids."""
    regions: dict[str, list[Polygon]] = defaultdict(list)
    grids: dict[str, tuple[float, float]] = {}
    for a in map(Path, annotations):
        if a.suffix.lower() == ".json":
            regs, g = read_coco(a)
            grids.update(g)
        else:
            regs = read_box_csv(a)
        for key, polys in regs.items():
            regions[key] += polys
    return regions, grids


def region_map(polygons: list[Polygon], size: tuple[int, int], sigma: float | None) -> np.ndarray:
    """Binary (0/1 float) union of `polygons` on a `size` = (W, H) grid, Gaussian-softened if σ."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon(poly, fill=1, outline=1)
    m = np.asarray(canvas, dtype=np.float64)
    if sigma:
        from scipy.ndimage import gaussian_filter

        m = gaussian_filter(m, sigma, mode="constant")
    return m


def import_regions(
    annotations: list[str | os.PathLike],
    labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    sigma: float | None = None,
    maps_dir: str | os.PathLike | None = None,
    split_map: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> tuple[Path, Path, int]:
    """Fill drawn regions into one PNG map per labelled image and write a manifest at `out`.

    `annotations`: COCO JSON files (`.json`) and/or box CSVs. Returns (manifest, maps folder,
    number of maps). Warnings, one line each with counts: regions reaching outside their image
    (clipped), labelled images with nothing drawn (no map), regions on ids the labels do not list.
    """
    if sigma is not None and not sigma >= 0:
        raise DataError(f"--sigma {sigma}: must be a number of pixels ≥ 0 (0 = binary maps)")
    labelled = read_labels(labels, split_map, label_map)
    regions, grids = read_annotations(annotations)
    locate_images(labelled, images)
    unknown = [k for k in regions if k not in labelled]
    if unknown:
        log.warning(
            "left out the regions of %d image id(s) not in --labels (e.g. %r)",
            len(unknown),
            unknown[0],
        )
    stats = {"beyond": 0, "scaled": 0}

    def make_map(key: str, row: Labelled) -> np.ndarray | None:
        assert row.size is not None
        polys, (w, h) = regions.get(key, []), row.size
        if key in grids and grids[key] != (w, h):
            fx, fy = w / grids[key][0], h / grids[key][1]
            polys = [[(x * fx, y * fy) for x, y in p] for p in polys]
            stats["scaled"] += 1
        stats["beyond"] += sum(
            any(not (0 <= x <= w - 1 and 0 <= y <= h - 1) for x, y in p) for p in polys
        )
        m = region_map(polys, (w, h), sigma) if polys else None
        return None if m is None or m.max() <= 0 else to_uint8(m)

    manifest, mdir, no_map = write_output(labelled, make_map, out, maps_dir)
    _warn_filled(stats, no_map)
    return manifest, mdir, len(labelled) - len(no_map)


def _warn_filled(stats: dict[str, int], no_map: list[str]) -> None:
    """One warning line each: regions clipped, annotations scaled to the file, images left
    without a map (`stats`: counts "beyond" and "scaled"; `no_map`: their ids)."""
    if stats["beyond"]:
        log.warning("%d region(s) reach outside their image: clipped to the image", stats["beyond"])
    if stats["scaled"]:
        log.warning(
            "%d image(s) are stored at another size than the annotation file says: regions "
            "scaled to the file",
            stats["scaled"],
        )
    if no_map:
        log.warning(
            "%d labelled image(s) have no region inside the image (e.g. %r): no map, saliency "
            "cell left empty",
            len(no_map),
            no_map[0],
        )
