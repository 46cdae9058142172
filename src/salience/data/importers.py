"""Importers from the two layouts the field's public code uses (reference-implementations.md §1.3, §2).

- `import_cyborg`: CYBORG's headerless `split,class,relative_path` CSVs; the image is
  `data_root + relative_path` and the heatmap is `heatmaps/<file name of the image>` (a flat folder).
- `import_fourcol`: the `split,truth,img_path,saliency_path` CSV (Human-Machine-Pairing
  Fingerprint PAD), header optional, absolute or root-relative paths.

Both write a manifest (salience.data.manifest) whose paths are relative to the manifest's own
folder. A source file outside that folder is rejected with a message saying where to put the
manifest: prepare refuses paths that leave the dataset folder, so such a manifest could not be used.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from salience.config import reserved_name
from salience.data import SPLITS
from salience.data.manifest import write_manifest
from salience.errors import DataError

log = logging.getLogger(__name__)

LABEL_NAMES: dict[str, int] = {
    "0": 0,
    "1": 1,
    "live": 0,
    "spoof": 1,
    "bonafide": 0,
    "bona_fide": 0,
    "bona fide": 0,
    "attack": 1,
    "normal": 0,
    "abnormal": 1,
    "real": 0,
    "fake": 1,
    "synthetic": 1,
}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NO_MAP = {"", "none", "nan", "null", "-", "0"}


def parse_pairs(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """`["A=B", ...]` → {"a": "B"} (keys case-insensitive)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise DataError(f"{what} {item!r}: expected OLD=NEW")
        k, v = item.split("=", 1)
        out[k.strip().lower()] = v.strip()
    return out


def label_of(value: str, label_map: dict[str, str], here: str) -> int:
    key = value.strip().lower()
    if key in label_map:
        mapped = label_map[key]
        if mapped not in ("0", "1"):
            raise DataError(f"--label-map {value}={mapped}: the target must be 0 or 1")
        return int(mapped)
    if key in LABEL_NAMES:
        return LABEL_NAMES[key]
    raise DataError(
        f"{here}: class {value!r} is not a known class name (accepted, case-insensitive: "
        f"{', '.join(sorted(LABEL_NAMES))}); map it with --label-map '{value}=0' or '{value}=1'"
    )


def split_of(value: str, split_map: dict[str, str], here: str) -> str:
    key = value.strip().lower()
    name = split_map.get(key, key)
    name = SPLIT_NAMES.get(name.lower(), name)
    if name not in SPLITS:
        raise DataError(
            f"{here}: split {value!r} is not train/val/test; map it with --split-map '{value}=train|val|test'"
        )
    return name


def relative_to_manifest(path: Path, out_dir: Path, here: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    if rel == ".." or rel.startswith(".." + os.sep):
        raise DataError(
            f"{here}: {path} lies outside the manifest's folder {os.path.abspath(out_dir)}; write the "
            f"manifest into a folder that contains every image and map (e.g. --out <data root>/manifest.csv)"
        )
    return Path(rel).as_posix()


def _rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: CSV not found; check the path")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        return [
            (i, [c.strip() for c in cells])
            for i, cells in enumerate(csv.reader(fh), 1)
            if any(c.strip() for c in cells)
        ]


def import_cyborg(
    csvs: list[str | os.PathLike],
    data_root: str | os.PathLike,
    heatmaps: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    test_csvs: list[str | os.PathLike] = (),  # type: ignore[assignment]
    split_map: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> Path:
    """Convert CYBORG CSVs (+ heatmap folder) into a manifest at `out`.

    `test_csvs` (e.g. csvs/gan_test_sets/*.csv): every row goes to the test split, and label-1
    rows get the CSV's file stem as subset (progan.csv → "progan"). CYBORG's original.csv calls
    its validation rows "test": pass split_map {"test": "val"} for it (docs/data.md).
    """
    out, root = Path(out), Path(data_root)
    out_dir = out.parent
    hm = Path(heatmaps) if heatmaps else None
    if hm is not None and not hm.is_dir():
        raise DataError(
            f"--heatmaps {hm}: not a folder; give the folder of CYBORG heatmaps (flat, keyed by file name)"
        )
    split_map, label_map = split_map or {}, label_map or {}
    rows: list[tuple[str, int, str, str, str]] = []
    no_map = missing = 0
    sources = [(Path(c), False) for c in csvs] + [(Path(c), True) for c in test_csvs]
    for csv_path, is_test in sources:
        why = reserved_name(csv_path.stem) if is_test else None
        if why:
            raise DataError(
                f"--test-csv {csv_path}: its file stem names the subset, but {why}; rename the CSV"
            )
    for csv_path, is_test in sources:
        for lineno, cells in _rows(csv_path):
            here = f"{csv_path} line {lineno}"
            if lineno == 1 and cells[0].lower() == "split":
                continue  # tolerate a header
            if len(cells) != 3:
                raise DataError(
                    f"{here}: {len(cells)} cells; CYBORG rows are split,class,relative_path"
                )
            split = "test" if is_test else split_of(cells[0], split_map, here)
            label = label_of(cells[1], label_map, here)
            image = root / cells[2].lstrip("/\\")
            missing += not image.is_file()
            sal = ""
            if hm is not None and (hm / image.name).is_file():
                sal = relative_to_manifest(hm / image.name, out_dir, here)
            elif split == "train":
                no_map += 1
            subset = csv_path.stem if is_test and label == 1 else ""
            rows.append((split, label, relative_to_manifest(image, out_dir, here), sal, subset))
    _finish(out, rows, missing, no_map)
    return out


def import_fourcol(
    csv_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    split_map: dict[str, str] | None = None,
    label_map: dict[str, str] | None = None,
) -> Path:
    """Convert a `split,truth,img_path,saliency_path` CSV into a manifest at `out`.

    Relative paths are resolved against `root` (default: the CSV's folder); a fifth column, when
    present, is taken as the subset. Empty/none/nan saliency cells mean "no map".
    """
    csv_path, out = Path(csv_path), Path(out)
    base = Path(root) if root else csv_path.parent
    split_map, label_map = split_map or {}, label_map or {}
    rows: list[tuple[str, int, str, str, str]] = []
    no_map = missing = 0
    for lineno, cells in _rows(csv_path):
        here = f"{csv_path} line {lineno}"
        if lineno == 1 and cells[0].lower() == "split":
            continue
        if len(cells) not in (4, 5):
            raise DataError(
                f"{here}: {len(cells)} cells; expected split,truth,img_path,saliency_path[,subset]"
            )
        split = split_of(cells[0], split_map, here)
        label = label_of(cells[1], label_map, here)
        image = base / cells[2]
        missing += not image.is_file()
        sal = ""
        if cells[3].lower() not in NO_MAP:
            sal = relative_to_manifest(base / cells[3], out.parent, here)
        elif split == "train":
            no_map += 1
        subset = cells[4] if len(cells) == 5 else ""
        why = reserved_name(subset) if subset else None
        if why:
            raise DataError(f"{here}: subset {why}; rename the subset in the CSV")
        rows.append((split, label, relative_to_manifest(image, out.parent, here), sal, subset))
    _finish(out, rows, missing, no_map)
    return out


def _finish(
    out: Path, rows: list[tuple[str, int, str, str, str]], missing: int, no_map: int
) -> None:
    if not rows:
        raise DataError(f"{out}: no rows to write; the input CSV(s) are empty")
    if missing:
        log.warning("%d image(s) listed do not exist; `prepare` will name each of them", missing)
    if no_map:
        log.warning("%d train row(s) have no saliency map (saliency cell left empty)", no_map)
    empty = [sp for sp in SPLITS if not any(r[0] == sp for r in rows)]
    if empty:
        log.warning(
            "no %s rows: `prepare` needs train, val and test (CYBORG's original.csv calls its "
            "validation rows 'test': --split-map test=val, and give its test sets with --test-csv)",
            "/".join(empty),
        )
    write_manifest(out, rows)
    log.info("wrote manifest with %d rows to %s", len(rows), out)
