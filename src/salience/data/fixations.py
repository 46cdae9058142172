"""Eye-tracking fixations → human saliency maps (`python -m salience import fixations`).

Three layouts (column names as published; docs/data.md §2 cites the sources):

- `egd`: the MIMIC-CXR eye-gaze dataset's `fixations.csv` (Karargyris et al. 2021, PhysioNet
  egd-cxr 1.0.0): `DICOM_ID`, `X_ORIGINAL`, `Y_ORIGINAL` (original image pixels; off-image gaze
  is negative), `FPOGD` (fixation duration, s). One radiologist read every image.
- `reflacx`: REFLACX's `metadata_phase_<n>.csv` (`id`, `dicom_id`, `image_size_x`, `image_size_y`,
  `eye_tracking_data_discarded`) with one `<id>/fixations.csv` per reading beside it
  (`x_position`, `y_position`, `timestamp_start_fixation`, `timestamp_end_fixation` in s,
  `angular_resolution_x_pixels_per_degree`, `angular_resolution_y_pixels_per_degree`).
- `generic`: `image,x,y,duration[,reader]`.

Each reading (one reader's fixations on one image) is rasterised as a sum of duration-weighted
Gaussian blobs on the image's pixel grid (`rasterise`), normalised to unit mass; the readings of an
image are averaged (each reader weighs the same), then min-max to 0…255 (docs/decisions.md,
"Fixation maps").
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
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

# σ defaults, docs/decisions.md "Fixation maps": the dataset authors' own heatmap code.
EGD_SIGMA_PX = 150.0  # eye-gaze-dataset create_heatmap_images_and_or_videos.py, sigma=150
REFLACX_DEGREES = 1.0  # REFLACX generate_heatmaps.py: σ = 1° × pixels per degree, per fixation

EGD_COLS = ("DICOM_ID", "X_ORIGINAL", "Y_ORIGINAL", "FPOGD")
REFLACX_META = ("id", "dicom_id", "image_size_x", "image_size_y")
REFLACX_FIX = (
    "x_position",
    "y_position",
    "timestamp_start_fixation",
    "timestamp_end_fixation",
    "angular_resolution_x_pixels_per_degree",
    "angular_resolution_y_pixels_per_degree",
)
GENERIC_COLS = ("image", "x", "y", "duration")


@dataclass
class Reading:
    """One reader's fixations on one image: positions (px), durations, σ (px) per fixation."""

    image: str
    reader: str
    grid: tuple[float, float] | None = None  # (width, height) the coordinates refer to, if known
    rows: list[tuple[float, float, float, float, float]] = field(default_factory=list)


def rasterise(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    sigma_x: np.ndarray,
    sigma_y: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Σ_k weight_k · N((x_k, y_k), diag(σx_k², σy_k²)) sampled at the pixels of an H×W grid.

    Pixel (row r, column c) sits at (x=c, y=r): the convention of the egd-cxr and REFLACX
    coordinates (integer image pixels). Each 2-D Gaussian is separable, so the map is one matrix
    product (H×n)·(n×W) of analytic 1-D profiles; no truncation. Returns float64 H×W. Pinned to
    `scipy.ndimage.gaussian_filter` on a duration-weighted point image by
    tests/test_import_maps.py.
    """
    h, w = shape
    cols = np.arange(w, dtype=np.float64)
    rows = np.arange(h, dtype=np.float64)
    gx = np.exp(-0.5 * ((cols[None, :] - x[:, None]) / sigma_x[:, None]) ** 2)
    gx /= math.sqrt(2 * math.pi) * sigma_x[:, None]
    gy = np.exp(-0.5 * ((rows[None, :] - y[:, None]) / sigma_y[:, None]) ** 2)
    gy /= math.sqrt(2 * math.pi) * sigma_y[:, None]
    return (gy * weight[:, None]).T @ gx


def _num(cell: str | None) -> float:
    try:
        return float(cell) if cell not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"{path}: fixation file not found; check the path")
    reader = read_csv_dicts(path)
    # cells beyond the header (key None) are ignored; missing cells read as empty
    rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    return [h.strip() for h in reader.fieldnames or []], rows


def detect_layout(header: list[str]) -> str:
    """egd | reflacx | generic from a header; a REFLACX per-reading file is refused with the fix."""
    have = set(header)
    if set(EGD_COLS) <= have:
        return "egd"
    if set(REFLACX_META) <= have:
        return "reflacx"
    if set(GENERIC_COLS) <= have:
        return "generic"
    if "timestamp_start_fixation" in have:
        raise DataError(
            "this is one REFLACX reading's fixations.csv; give the metadata_phase_<n>.csv beside "
            "the reading folders instead (--fixations main_data/metadata_phase_3.csv)"
        )
    raise DataError(
        f"columns {', '.join(header) or '(none)'} match no known layout: egd-cxr fixations.csv "
        f"({', '.join(EGD_COLS)}), REFLACX metadata ({', '.join(REFLACX_META)}) or generic "
        f"({','.join(GENERIC_COLS)}[,reader])"
    )


class Counts:
    """The counters reported in one line each at the end."""

    def __init__(self) -> None:
        self.bad: list[str] = []  # "file line n: reason"
        self.discarded = 0

    def report_bad(self, skip: bool) -> None:
        """Refuse bad rows (one line with the count and the first), or warn when skipping them."""
        if self.bad:
            first = self.bad[0]
            if not skip:
                raise DataError(
                    f"{len(self.bad)} fixation row(s) have a negative or NaN duration, or a NaN "
                    f"position or σ (first: {first}); fix or remove them, or pass --skip-bad-rows "
                    f"to leave them out"
                )
            log.warning("left out %d bad fixation row(s) (first: %s)", len(self.bad), first)
        if self.discarded:
            log.warning(
                "left out %d REFLACX reading(s) marked eye_tracking_data_discarded", self.discarded
            )


def read_fixations(path: Path, layout: str, sigma: float | None, counts: Counts) -> list[Reading]:
    """All readings of one fixation file (for `reflacx`: the metadata file) in `layout`."""
    header, table = _table(path)
    if layout == "auto":
        try:
            layout = detect_layout(header)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
    readings: dict[tuple[str, str], Reading] = {}
    if layout == "reflacx":
        return _read_reflacx(path, header, table, sigma, counts)
    need = EGD_COLS if layout == "egd" else GENERIC_COLS
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{path} line 1: no column(s) {', '.join(missing)} for layout {layout}")
    if layout == "generic" and sigma is None:
        raise DataError(
            f"{path}: the generic layout needs --sigma PX (one degree of visual angle in image "
            f"pixels at your viewing distance and zoom; see docs/decisions.md)"
        )
    s = EGD_SIGMA_PX if sigma is None else sigma
    img_c, x_c, y_c, d_c = need
    for lineno, r in enumerate(table, start=2):
        key = (r[img_c], r.get("reader", "") if layout == "generic" else "")
        rd = readings.setdefault(key, Reading(key[0], key[1]))
        x, y, d = _num(r[x_c]), _num(r[y_c]), _num(r[d_c])
        _add(rd, f"{path} line {lineno}", counts, x=x, y=y, d=d, sx=s, sy=s)
    return list(readings.values())


def _add(
    rd: Reading, here: str, counts: Counts, *, x: float, y: float, d: float, sx: float, sy: float
) -> None:
    """Add the fixation at (x, y) px lasting d with σ (sx, sy) px to `rd`, or count it as bad
    (named by `here`) when a value is missing or out of range."""
    if not math.isfinite(d) or d < 0:
        counts.bad.append(f"{here}: duration {d}")
    elif not (math.isfinite(x) and math.isfinite(y)):
        counts.bad.append(f"{here}: position ({x}, {y})")
    elif not (0 < sx < math.inf and 0 < sy < math.inf):
        counts.bad.append(f"{here}: σ ({sx}, {sy}) px")
    else:
        rd.rows.append((x, y, d, sx, sy))


def _read_reflacx(
    path: Path, header: list[str], meta: list[dict[str, str]], sigma: float | None, counts: Counts
) -> list[Reading]:
    missing = [c for c in REFLACX_META if c not in header]
    if missing:
        raise DataError(f"{path} line 1: no column(s) {', '.join(missing)} (REFLACX metadata)")
    out = []
    for lineno, m in enumerate(meta, start=2):
        if m.get("eye_tracking_data_discarded", "").lower() == "true":
            counts.discarded += 1
            continue
        fpath = path.parent / m["id"] / "fixations.csv"
        fheader, fixes = _table(fpath)
        missing = [c for c in REFLACX_FIX if c not in fheader]
        if missing:
            raise DataError(f"{fpath} line 1: no column(s) {', '.join(missing)} (REFLACX)")
        grid = (_num(m["image_size_x"]), _num(m["image_size_y"]))
        if not all(v > 0 for v in grid):
            raise DataError(f"{path} line {lineno}: image_size_x/y {grid} are not sizes")
        rd = Reading(m["dicom_id"], m["id"], grid)
        for fl, f in enumerate(fixes, start=2):
            d = _num(f["timestamp_end_fixation"]) - _num(f["timestamp_start_fixation"])
            if sigma is None:
                sx = REFLACX_DEGREES * _num(f["angular_resolution_x_pixels_per_degree"])
                sy = REFLACX_DEGREES * _num(f["angular_resolution_y_pixels_per_degree"])
            else:
                sx = sy = sigma
            x, y = _num(f["x_position"]), _num(f["y_position"])
            _add(rd, f"{fpath} line {fl}", counts, x=x, y=y, d=d, sx=sx, sy=sy)
        out.append(rd)
    return out


def reading_map(
    rd: Reading,
    size: tuple[int, int],
    outside: str,
    counts: dict[str, int],
    weight: str = "duration",
) -> np.ndarray | None:
    """The unit-mass float map of one reading on a `size` = (W, H) image, or None (no mass)."""
    w, h = size
    a = np.asarray(rd.rows, dtype=np.float64).reshape(-1, 5)
    x, y, d, sx, sy = a.T
    if rd.grid is not None and (rd.grid[0], rd.grid[1]) != (w, h):
        # Coordinates refer to the recorded grid (REFLACX image_size_x/y); the file on disk may
        # be a resized copy (e.g. MIMIC-CXR-JPG): scale positions and σ to the file's grid.
        fx, fy = w / rd.grid[0], h / rd.grid[1]
        x, y, sx, sy = x * fx, y * fy, sx * fx, sy * fy
        counts["scaled"] += 1
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    counts["outside"] += int((~inside).sum())
    counts["fixations"] += len(x)
    if outside == "drop":
        x, y, d, sx, sy = (v[inside] for v in (x, y, d, sx, sy))
    else:
        x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    if weight == "count":  # the egd-cxr authors' heatmaps count fixations (docs/decisions.md)
        d = np.ones_like(d)
    if len(x) == 0 or d.sum() <= 0:
        return None
    m = rasterise(x, y, d, sx, sy, (h, w))
    total = m.sum()
    if not total > 0:
        return None
    m /= total
    return m


def import_fixations(
    fixations: list[str | os.PathLike],
    labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    layout: str = "auto",
    sigma: float | None = None,
    outside: str = "drop",
    weight: str = "duration",
    skip_bad_rows: bool = False,
    maps_dir: str | os.PathLike | None = None,
    split_map: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> tuple[Path, Path, int]:
    """Rasterise fixations into one PNG map per labelled image and write a manifest at `out`.

    Returns (manifest, maps folder, number of maps). Raises DataError for unusable input: unknown
    columns, negative/NaN/infinite durations or NaN/infinite positions and σ (unless
    `skip_bad_rows`), labelled images
    without a file. Warnings (one line each, with counts): fixations outside their image
    (`outside` = "drop" leaves them out, "clip" moves them to the nearest edge pixel), labelled
    images without a usable fixation (no map), fixations on ids the labels do not list.
    `weight` = "duration" (default) or "count" (every fixation weighs 1).
    """
    if sigma is not None and not sigma > 0:
        raise DataError(f"--sigma {sigma}: must be a positive number of pixels")
    labelled = read_labels(labels, split_map, label_map)
    counts = Counts()
    readings: list[Reading] = []
    for f in fixations:
        readings += read_fixations(Path(f), layout, sigma, counts)
    counts.report_bad(skip_bad_rows)
    locate_images(labelled, images)
    by_image = _by_image(readings, labelled)
    stats = {"outside": 0, "fixations": 0, "scaled": 0}

    def make_map(key: str, row: Labelled) -> np.ndarray | None:
        # readers averaged with equal weight: each reading has unit mass (docs/decisions.md)
        total, n = None, 0
        for rd in by_image.get(key, []):
            assert row.size is not None
            m = reading_map(rd, row.size, outside, stats, weight)
            if m is not None:
                n += 1
                if total is None:
                    total = m
                else:
                    total += m
        if total is None:
            return None
        total /= n
        return to_uint8(total)

    manifest, mdir, no_map = write_output(labelled, make_map, out, maps_dir)
    _report(stats, outside, no_map)
    return manifest, mdir, len(labelled) - len(no_map)


def _by_image(readings: list[Reading], labelled: dict[str, Labelled]) -> dict[str, list[Reading]]:
    """Readings grouped by labelled image id; fixations on other ids are counted and left out."""
    by_image: dict[str, list[Reading]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    for rd in readings:
        if rd.image in labelled:
            by_image[rd.image].append(rd)
        else:
            unknown[rd.image] += len(rd.rows)
    if unknown:
        log.warning(
            "left out %d fixation(s) on %d image id(s) not in --labels (e.g. %r); add them to the "
            "label CSV if they belong to the study (egd-cxr also has calibration images)",
            sum(unknown.values()),
            len(unknown),
            next(iter(unknown)),
        )
    return by_image


def _report(stats: dict[str, int], outside: str, no_map: list[str]) -> None:
    if stats["outside"]:
        how = "left out" if outside == "drop" else "moved to the nearest edge (--outside clip)"
        log.warning(
            "%d of %d fixation(s) fall outside their image: %s",
            stats["outside"],
            stats["fixations"],
            how,
        )
    if stats["scaled"]:
        log.warning(
            "%d reading(s) were recorded on another image size than the file's: positions and σ "
            "scaled to the file",
            stats["scaled"],
        )
    if no_map:
        log.warning(
            "%d labelled image(s) have no fixation inside the image (e.g. %r): no map, saliency "
            "cell left empty",
            len(no_map),
            no_map[0],
        )
