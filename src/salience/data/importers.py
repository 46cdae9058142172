"""Importers from the two layouts the field's public code uses (docs/reference-implementations.md §1.3, §2).

- `import_cyborg`: CYBORG's headerless `split,class,relative_path` CSVs; the image is
  `data_root + relative_path` and the heatmap is `heatmaps/<stem of the image>.<any image extension>`
  (salience.data.mapmatch: flat, or in folders mirroring the image folders).
- `import_fourcol`: the `split,truth,img_path,saliency_path` CSV (Human-Machine-Pairing
  Fingerprint PAD), header optional, absolute or root-relative paths.

Both write a manifest (salience.data.manifest) whose paths are relative to the manifest's own
folder. A source file outside that folder is rejected with a message saying where to put the
manifest: prepare refuses paths that leave the dataset folder, so such a manifest could not be used.
An image listed by several input rows is one manifest row when they agree (issue 10.7), and the
import logs how many train images got a map and two examples of those that did not (issue 10.3).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from salience.config import subset_problem
from salience.data import SPLITS
from salience.data.manifest import read_csv_lines, write_manifest
from salience.data.mapmatch import IMAGE_EXTENSIONS, MapIndex
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
    """The class index of a label cell: `label_map` (--label-map NAME=INDEX) first, then the binary
    names of LABEL_NAMES. Targets are 0 or 1 for a binary dataset (1 = attack / synthetic /
    abnormal), or a class index 0..K-1 of a K-class one (issue 12), whose class names `prepare`
    then needs (datasets.<name>.classes or prepare --classes); DataError for any other target."""
    key = value.strip().lower()
    if key in label_map:
        mapped = label_map[key]
        if not (mapped.isascii() and mapped.isdigit() and mapped == str(int(mapped))):
            raise DataError(
                f"--label-map {value}={mapped}: the target must be a class index: 0 or 1 (1 = "
                f"attack/synthetic/abnormal), or 0..K-1 for K classes (then give prepare the class "
                f"names: datasets.<name>.classes)"
            )
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
    return [
        (i, [c.strip() for c in cells])
        for i, cells in enumerate(read_csv_lines(csv_path), 1)
        if any(c.strip() for c in cells)
    ]


class _Rows:
    """Manifest rows keyed by image path. An image listed again with the same split, label and
    subset is one row (real images shared by several generator test CSVs: the per-generator
    AUROC pairs them with every generator, issue 10.7); listed with another split, label, subset
    or map it is an error naming both lines."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {}
        self.where: dict[str, str] = {}
        self.merged = 0

    def add(self, here: str, *, split: str, label: int, image: str, sal: str, subset: str) -> None:
        prev = self.rows.get(image)
        if prev is None:
            self.rows[image] = [split, label, image, sal, subset]
            self.where[image] = here
            return
        if (prev[0], prev[1], prev[4]) != (split, label, subset) or (
            sal and prev[3] not in ("", sal)
        ):
            raise DataError(
                f"{here}: {image}: already listed on {self.where[image]} as {_desc(*prev)}, here as "
                f"{_desc(split, label, image, sal, subset)}; an image belongs to one split, class "
                f"and subset: remove one of the rows"
            )
        prev[3] = prev[3] or sal
        self.merged += 1

    def tuples(self) -> list[tuple[str, int, str, str, str]]:
        return [tuple(r) for r in self.rows.values()]  # type: ignore[misc]


def _desc(split: str, label: int, image: str, sal: str, subset: str) -> str:
    return (
        f"{split} label {label}"
        + (f" subset {subset}" if subset else "")
        + (f" map {sal}" if sal else "")
    )


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
    its validation rows "test": pass split_map {"test": "val"} for it (docs/data.md). Heatmaps
    are matched by image stem with any image extension (salience.data.mapmatch); an image listed
    by several CSVs is one row. Raises DataError (one line) on bad rows, ambiguous or shared maps,
    and a heatmap folder that matches no image at all.
    """
    out = Path(out)
    hm = Path(heatmaps) if heatmaps else None
    if hm is not None and not hm.is_dir():
        raise DataError(
            f"--heatmaps {hm}: not a folder; give the folder of CYBORG heatmaps (keyed by the image's file name)"
        )
    reader = _CyborgReader(
        Path(data_root),
        out.parent,
        MapIndex(hm) if hm is not None else None,
        split_map or {},
        label_map or {},
    )
    sources = [(Path(c), False) for c in csvs] + [(Path(c), True) for c in test_csvs]
    for csv_path, is_test in sources:
        why = subset_problem(csv_path.stem) if is_test else None
        if why:
            raise DataError(
                f"--test-csv {csv_path}: its file stem names the subset, but {why}; rename the CSV"
            )
    for csv_path, is_test in sources:
        reader.read(csv_path, is_test)
    if reader.index is not None:
        reader.index.check_shared()
    _report_maps(
        reader.rows,
        hm,
        f"looked for <image stem>.<{'|'.join(e[1:] for e in IMAGE_EXTENSIONS)}> under {hm}",
    )
    _finish(out, reader.rows, reader.missing)
    return out


@dataclass
class _CyborgReader:
    """Reads CYBORG CSV rows into `rows`: images under `root`, paths relative to `out_dir` (the
    manifest's folder), heatmaps matched in `index` (None: no heatmap folder)."""

    root: Path
    out_dir: Path
    index: MapIndex | None
    split_map: dict[str, str]
    label_map: dict[str, str]
    rows: _Rows = field(default_factory=_Rows)
    missing: int = 0  # images listed that do not exist (prepare names each)

    def read(self, csv_path: Path, is_test: bool) -> None:
        """Add the rows of one CSV; `is_test`: a --test-csv (all rows test, label-1 subset = stem)."""
        for lineno, cells in _rows(csv_path):
            here = f"{csv_path} line {lineno}"
            if lineno == 1 and cells[0].lower() == "split":
                continue  # tolerate a header
            if len(cells) != 3:
                raise DataError(
                    f"{here}: {len(cells)} cells; CYBORG rows are split,class,relative_path"
                )
            split = "test" if is_test else split_of(cells[0], self.split_map, here)
            label = label_of(cells[1], self.label_map, here)
            rel = os.path.normpath(cells[2].lstrip("/\\")).replace(os.sep, "/")
            image = self.root / rel
            self.missing += not image.is_file()
            found = self.index.match(rel, here, image) if self.index is not None else None
            sal = relative_to_manifest(found, self.out_dir, here) if found is not None else ""
            self.rows.add(
                here,
                split=split,
                label=label,
                image=relative_to_manifest(image, self.out_dir, here),
                sal=sal,
                subset=csv_path.stem if is_test and label == 1 else "",
            )


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
    present, is taken as the subset. Empty/none/nan saliency cells mean "no map". A map path
    whose file is missing is matched by stem in its folder (`x.jpg` given, `x.png` stored); an
    image listed twice is one row when both rows agree, else an error naming both lines.
    """
    csv_path, out = Path(csv_path), Path(out)
    base = Path(root) if root else csv_path.parent
    split_map, label_map = split_map or {}, label_map or {}
    rows = _Rows()
    missing = 0
    absent: set[str] = set()  # images whose named map file does not exist
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
            map_path = _map_file(base / cells[3], here)
            sal = relative_to_manifest(map_path, out.parent, here)
            if not map_path.is_file():  # counted as a train image without a map, named by prepare
                absent.add(relative_to_manifest(image, out.parent, here))
        subset = cells[4] if len(cells) == 5 else ""
        why = subset_problem(subset) if subset else None
        if why:
            raise DataError(f"{here}: subset {why}; rename the subset in the CSV")
        rows.add(
            here,
            split=split,
            label=label,
            image=relative_to_manifest(image, out.parent, here),
            sal=sal,
            subset=subset,
        )
    _report_maps(rows, None, f"saliency_path cells of {csv_path}", absent)
    _finish(out, rows, missing)
    return out


def _map_file(path: Path, here: str) -> Path:
    """`path`, or the one file of its folder with its stem and another image extension."""
    if path.is_file() or not path.parent.is_dir():
        return path
    found = MapIndex(path.parent).by_stem.get(path.stem, [])
    found = [f for f in found if len(f.parts) == 1]
    if len(found) > 1:
        names = ", ".join(str(path.parent / f) for f in found)
        raise DataError(
            f"{here}: {path}: no such file, and {len(found)} maps share its stem ({names}); name "
            f"the one that belongs to the image"
        )
    return path.parent / found[0] if found else path


def _report_maps(rows: _Rows, hm: Path | None, looked: str, absent: set[str] | None = None) -> None:
    """Counts of train rows with / without a map (two examples), and an error when a heatmap
    folder was given but matched no image at all. `absent`: images whose named map file does not
    exist (they count as without a map; `prepare` names each)."""
    absent = absent or set()
    train = [r for r in rows.rows.values() if r[0] == "train"]
    without = [r[2] for r in train if not r[3] or r[2] in absent]
    if hm is not None and len(without) == len(train) and not any(r[3] for r in rows.rows.values()):
        raise DataError(
            f"--heatmaps {hm}: no heatmap matches any of the {len(rows.rows)} images ({looked}, e.g. "
            f"{_examples(without or list(rows.rows))}); check the folder, or leave --heatmaps out "
            f"to import without maps"
        )
    if hm is None and not any(r[3] for r in rows.rows.values()):
        log.warning(
            "no saliency maps imported (no --heatmaps); methods that train on maps will refuse "
            "this dataset"
        )
    elif without:
        log.warning(
            "saliency maps found for %d of %d train images, %d have none%s (%s; e.g. %s)",
            len(train) - len(without),
            len(train),
            len(without),
            " or name a missing file" if absent & set(without) else "",
            looked,
            _examples(without),
        )
    else:
        log.info("saliency maps found for all %d train images", len(train))


def _examples(items: list[str]) -> str:
    return ", ".join(items[:2])


def _finish(out: Path, rows: _Rows, missing: int) -> None:
    if not rows.rows:
        raise DataError(f"{out}: no rows to write; the input CSV(s) are empty")
    if missing:
        log.warning("%d image(s) listed do not exist; `prepare` will name each of them", missing)
    if rows.merged:
        log.info(
            "%d row(s) listed an image already imported with the same split, label and subset "
            "(e.g. real images shared by several --test-csv files): one manifest row each",
            rows.merged,
        )
    tuples = rows.tuples()
    empty = [sp for sp in SPLITS if not any(r[0] == sp for r in tuples)]
    if empty:
        log.warning(
            "no %s rows: `prepare` needs train, val and test (CYBORG's original.csv calls its "
            "validation rows 'test': --split-map test=val, and give its test sets with --test-csv)",
            "/".join(empty),
        )
    write_manifest(out, tuples)
    log.info("wrote manifest with %d rows to %s", len(tuples), out)
