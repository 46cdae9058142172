"""What the fixation and region importers share: the label CSV, finding image files, writing maps.

The two importers (`salience.data.fixations`, `salience.data.regions`) turn human saliency that is
not yet an image (eye-tracking fixations, drawn polygons and boxes) into 8-bit greyscale PNG maps
on each image's own pixel grid, plus a manifest (docs/data.md §2, "Fixations and drawn regions").

- `read_labels`: the user's `image,split,label[,subset][,path]` CSV (image = the id the fixation or
  annotation file uses, e.g. MIMIC-CXR's dicom_id).
- `locate_images`: the image file of every labelled id (the `path` column, or a search of
  `--images` for a file whose stem is the id).
- `write_output`: maps into a fresh folder (temporary sibling, renamed at the end), then the
  manifest; nothing is half-written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salience.config import subset_problem
from salience.data import check_replaceable
from salience.data.importers import label_of, relative_to_manifest, split_of
from salience.data.manifest import read_csv_lines
from salience.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MAPS_MARKER = ".salience-maps"


@dataclass
class Labelled:
    """One row of the label CSV: the image id, where its file is, and its manifest cells."""

    key: str
    split: str
    label: int
    subset: str
    line: int
    path: Path | None = None
    size: tuple[int, int] | None = None  # (width, height) of the image file, read lazily


def read_labels(
    labels: str | os.PathLike,
    split_map: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> dict[str, Labelled]:
    """Read `image,split,label[,subset][,path]` (header required) into {image id: Labelled}."""
    labels = Path(labels)
    if not labels.is_file():
        raise DataError(f"--labels {labels}: file not found; give the image,split,label CSV")
    rows = read_csv_lines(labels)
    header = [h.strip().lower() for h in rows[0]] if rows else []
    missing = [c for c in ("image", "split", "label") if c not in header]
    if missing:
        raise DataError(
            f"{labels} line 1: header lacks column(s) {', '.join(missing)}; the label CSV needs "
            f"image,split,label (optional subset, path)"
        )
    col = {name: i for i, name in enumerate(header)}
    out: dict[str, Labelled] = {}
    for lineno, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        here = f"{labels} line {lineno}"
        if len(cells) != len(header):
            raise DataError(f"{here}: {len(cells)} cells but the header has {len(header)}")

        def cell(name: str, cells: list[str] = cells) -> str:
            return cells[col[name]].strip() if name in col else ""

        key = cell("image")
        if not key or "/" in key or "\\" in key or key in (".", ".."):
            raise DataError(f"{here}: image id {key!r} cannot name a map file; use the bare id")
        if key in out:
            raise DataError(f"{here}: image {key!r} is listed twice (also line {out[key].line})")
        if cell("subset") and (why := subset_problem(cell("subset"))):
            raise DataError(f"{here}: subset {why}; rename the subset in the label CSV")
        row = Labelled(
            key,
            split_of(cell("split"), split_map or {}, here),
            label_of(cell("label"), label_map or {}, here),
            cell("subset"),
            lineno,
        )
        if cell("path"):
            row.path = labels.parent / cell("path")
        out[key] = row
    if not out:
        raise DataError(f"{labels}: no rows; list every image as image,split,label")
    return out


def locate_images(labelled: dict[str, Labelled], images: str | os.PathLike | None) -> None:
    """Fill in `path` and `size` of every row: its `path` cell, else the one file under `images`
    (searched recursively) whose stem is the id. A missing or ambiguous file is an error."""
    index: dict[str, list[Path]] = {}
    if any(r.path is None for r in labelled.values()):
        if images is None or not Path(images).is_dir():
            where = f"--images {images}: not a folder" if images else "no --images given"
            raise DataError(
                f"{where}; give the folder holding the image files "
                f"(found by name: <image id>.png/.jpg/...), or add a path column to --labels"
            )
        for dirpath, dirs, files in os.walk(images):
            if MAPS_MARKER in files:  # maps an earlier import wrote are not images
                dirs.clear()
                continue
            dirs[:] = [d for d in dirs if not d.startswith((".tmp-", ".old-"))]
            for name in files:
                p = Path(dirpath) / name
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    index.setdefault(p.stem, []).append(p)
    from PIL import Image

    for row in labelled.values():
        if row.path is None:
            found = index.get(row.key, [])
            if len(found) != 1:
                what = "no image file" if not found else f"{len(found)} image files"
                raise DataError(
                    f"--labels line {row.line}: {what} named {row.key}.png/.jpg/... under {images}; "
                    f"add a path column to the label CSV"
                )
            row.path = found[0]
        try:
            with Image.open(row.path) as im:
                row.size = im.size
        except (OSError, ValueError) as exc:
            raise DataError(f"{row.path}: unreadable image ({exc}); fix or remove it") from exc


def to_uint8(m: np.ndarray) -> np.ndarray:
    """Min-max a float map to 0…255 (rounded); a constant map gives zeros."""
    lo, hi = float(m.min()), float(m.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise DataError("a saliency map came out NaN or infinite; please report this as a bug")
    if hi <= lo:
        return np.zeros(m.shape, np.uint8)
    out = m - lo  # in place from here on: a MIMIC-size map is 60 MB of float64
    out *= 255.0 / (hi - lo)
    np.rint(out, out=out)
    return out.astype(np.uint8)


def _maps_files(folder: Path, marker: dict) -> list[str] | None:
    """The files of a maps folder an earlier import wrote (its marker's list), else None."""
    maps = marker.get("maps")
    if marker.get("written_by") != "python -m salience import" or not isinstance(maps, list):
        return None
    return [str(m) for m in maps]


def write_output(
    labelled: dict[str, Labelled],
    make_map: Callable[[str, Labelled], np.ndarray | None],
    out: str | os.PathLike,
    maps_dir: str | os.PathLike | None,
) -> tuple[Path, Path, list[str]]:
    """Write `make_map(id, row)` (uint8 H×W, or None: no map) as `<maps_dir>/<id>.png` for every
    labelled image, then the manifest `out`. Returns (manifest, maps folder, ids without a map).

    Maps are saved as they are made (a study's maps do not fit in memory together) into a
    temporary sibling of `maps_dir` (default `<manifest folder>/maps`) that is renamed when all
    are written; an existing folder is replaced only if an earlier import made it (marker file).
    A DataError from `make_map` or no map at all leaves nothing behind.
    """
    from PIL import Image

    from salience.data.manifest import write_manifest
    from salience.io import atomic_dir

    out = Path(out)
    mdir = Path(maps_dir) if maps_dir else out.parent / "maps"
    check_replaceable(mdir, MAPS_MARKER, "a maps folder written by `salience import`", _maps_files)
    for row in labelled.values():  # before any work: every path must fit in the manifest
        assert row.path is not None
        relative_to_manifest(row.path, out.parent, f"--labels line {row.line}")
    relative_to_manifest(mdir / "x.png", out.parent, "--maps")
    rows, no_map = [], []
    written: list[str] = []
    with atomic_dir(mdir) as tmp:
        for key, row in labelled.items():
            assert row.path is not None
            m = make_map(key, row)
            sal = ""
            if m is None:
                no_map.append(key)
            else:
                Image.fromarray(m).save(tmp / f"{key}.png")
                written.append(f"{key}.png")
                sal = relative_to_manifest(mdir / f"{key}.png", out.parent, "--maps")
            image = relative_to_manifest(row.path, out.parent, f"--labels line {row.line}")
            rows.append((row.split, row.label, image, sal, row.subset))
        if len(no_map) == len(rows):
            raise DataError(
                "no labelled image got a map; check that the image ids in --labels match the ids "
                "in the fixation or annotation file"
            )
        # the marker lists every file of this output: a later import replaces the folder only
        # when it holds nothing else (salience.data.check_replaceable, issue 10.1)
        marker = {"written_by": "python -m salience import", "maps": written}
        (tmp / MAPS_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    write_manifest(out, rows)
    return out, mdir, no_map
