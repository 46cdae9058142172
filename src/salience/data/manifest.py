"""The manifest: one CSV per dataset, header `split,label,image,saliency,subset`.

- split: train | val | test;  label: 0 or 1 (1 = attack / synthetic / abnormal), or, for a K-class
  dataset whose class names are declared (`classes`, config `datasets.<name>.classes`), a class
  name or its index 0..K-1 (docs/data.md "K classes")
- image, saliency: paths relative to the manifest's folder (saliency may be empty)
- subset: attack type or generator (may be empty)

`read_manifest` performs every check that needs no image decoding (docs/data.md, "Bad input"):
columns, split names, labels, paths that escape the dataset folder (`..`, absolute elsewhere,
symlinks pointing outside), missing files, duplicate images, empty splits and splits that lack a
class.
All problems are logged; the raised DataError carries the first one in one line.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from salience.config import name_problem, reserved_name
from salience.data import SPLITS
from salience.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLUMNS = ("split", "label", "image", "saliency", "subset")
REQUIRED = ("split", "label", "image")
MAX_REPORTED = 20


@dataclass(frozen=True)
class ManifestRow:
    line: int  # line number in the CSV file (the header is line 1)
    split: str
    label: int
    image: str  # normalised path relative to the manifest folder (posix)
    saliency: str  # same, or "" when the row has no map
    subset: str
    image_path: Path
    saliency_path: Path | None


class Problems:
    """Collects one-line problems; `raise_if_any` raises the first (count of the rest appended)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def full(self) -> bool:
        return len(self.items) >= MAX_REPORTED

    def raise_if_any(self) -> None:
        if not self.items:
            return
        more = len(self.items) - 1
        if more:  # the first one is the exception's message; list them all once
            for msg in self.items:
                log.error("%s", msg)
        extra = (
            f" (and {more} more problem{'s' if more > 1 else ''}, all logged above)" if more else ""
        )
        raise DataError(self.items[0] + extra)


def where(manifest: Path, line: int) -> str:
    return f"{manifest} line {line}"


def resolve_inside(root: Path, cell: str) -> tuple[str, Path] | str:
    """Resolve a manifest path cell against the dataset folder `root`.

    Returns (relative posix path, absolute path), or a problem string when the path leaves the
    folder: a `..` escape, an absolute path elsewhere, or a symlink whose target lies outside.
    """
    root_abs = Path(os.path.normpath(os.path.abspath(root)))
    p = Path(cell)
    lexical = Path(os.path.normpath(p if p.is_absolute() else root_abs / p))
    try:
        rel = lexical.relative_to(root_abs)
    except ValueError:
        if p.is_absolute():
            return f"absolute path outside the dataset folder {root_abs}"
        return f"path escapes the dataset folder {root_abs} (via '..')"
    real = Path(os.path.realpath(lexical))
    root_real = Path(os.path.realpath(root_abs))
    if real != root_real and root_real not in real.parents:
        return f"symlink pointing outside the dataset folder {root_abs} (to {real})"
    return rel.as_posix(), lexical


def read_csv_text(path: Path) -> str:
    """Text of a UTF-8 CSV (a BOM is allowed). Any other encoding (a UTF-16 "Unicode text" export
    of a spreadsheet, Latin-1) is a DataError naming the line, never a traceback or guessed text.
    Every CSV the package reads (manifests, importers' inputs) goes through here.
    """
    data = Path(path).read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"{path}: UTF-16 text (a spreadsheet's 'Unicode text' export), not a UTF-8 CSV; save it "
            f"as 'CSV UTF-8 (comma delimited)' and rerun"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{where(path, line)}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as "
            f"'CSV UTF-8' (or convert it: iconv -f latin1 -t utf-8) and rerun"
        ) from None


def read_csv_lines(path: Path) -> list[list[str]]:
    """Cells of a UTF-8 CSV, one list per line (see `read_csv_text` for the encoding rule)."""
    return list(csv.reader(io.StringIO(read_csv_text(path), newline="")))


def read_csv_dicts(path: Path) -> csv.DictReader:
    """A csv.DictReader over a UTF-8 CSV (see `read_csv_text` for the encoding rule)."""
    return csv.DictReader(io.StringIO(read_csv_text(path), newline=""))


def read_manifest(
    manifest: str | os.PathLike, classes: list[str] | tuple[str, ...] | None = None
) -> list[ManifestRow]:
    """Read and check a manifest (no image decoding); raise DataError on the first problem found.

    classes: the declared class names in label-index order (`check_classes`), or None for a binary
    manifest with labels 0 and 1. Each row's label is its class index (int64 in [0, K)).
    """
    manifest = Path(manifest)
    classes = check_classes(classes)
    if not manifest.is_file():
        raise DataError(
            f"{manifest}: manifest not found; generate one (`python -m salience generate ...`) or convert "
            f"your CSV (`python -m salience import cyborg|fourcol ...`), see docs/data.md"
        )
    lines = read_csv_lines(manifest)
    check = _RowCheck(manifest, *_columns(manifest, lines), classes=classes)
    problems = Problems()
    rows: list[ManifestRow] = []
    for lineno, cells in enumerate(lines[1:], start=2):
        if problems.full():
            break
        if not cells or all(not c.strip() for c in cells):
            continue
        row = check.row(lineno, cells)
        if isinstance(row, str):
            problems.add(row)
        else:
            rows.append(row)
    problems.raise_if_any()
    check_splits(manifest, rows, classes)
    return rows


def check_classes(classes: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The declared class names as a tuple (None: binary 0/1). ConfigError unless they are at least
    two distinct names of the name charset (a class name becomes a metric key and a table
    column). Two names are a binary dataset whose second class is label 1 (attack / synthetic /
    abnormal)."""
    if classes is None:
        return None
    names = tuple(str(c) for c in classes)
    where = "classes (datasets.<name>.classes or prepare --classes)"
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f"{where} {list(names)}: list at least two distinct class names, in label order"
        )
    for name in names:
        if problem := name_problem(name):
            raise ConfigError(f"{where}: class {problem}; rename the class")
    return names


def _columns(manifest: Path, lines: list[list[str]]) -> tuple[dict[str, int], int]:
    """(column name → cell index, number of header cells) from the header line; DataError when
    the file is empty or a required column is missing, a warning for unknown columns."""
    if not lines:
        raise DataError(
            f"{manifest}: empty file; the first line must be the header {','.join(COLUMNS)}"
        )
    header = [h.strip().lower() for h in lines[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        hint = (
            " (this looks like a headerless CYBORG or 4-column CSV: convert it with "
            "`python -m salience import cyborg|fourcol ...`)"
            if header and header[0] in SPLITS
            else ""
        )
        raise DataError(
            f"{where(manifest, 1)}: header lacks column(s) {', '.join(missing)}; the header must be "
            f"{','.join(COLUMNS)}{hint}"
        )
    extra = [h for h in header if h not in COLUMNS]
    if extra:
        log.warning("%s: ignoring unknown column(s) %s", manifest, ", ".join(extra))
    return {name: header.index(name) for name in COLUMNS if name in header}, len(header)


@dataclass
class _RowCheck:
    """Checks the data lines of `manifest` one by one (`col`: column → cell index, `width`: cells
    per line); remembers each image path's line to report duplicates."""

    manifest: Path
    col: dict[str, int]
    width: int
    seen: dict[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None

    def row(self, lineno: int, cells: list[str]) -> ManifestRow | str:
        """The checked row of line `lineno`, or its problem (one line naming the line and fix)."""
        here = where(self.manifest, lineno)
        if len(cells) != self.width:
            return (
                f"{here}: {len(cells)} cells but the header has {self.width}; fix the row (quote "
                f"commas in paths)"
            )
        split, label_s, image, sal, subset = (
            cells[self.col[name]].strip() if name in self.col else "" for name in COLUMNS
        )
        problem = _cell_problem(here, split, label_s, image, subset, self.classes)
        label = label_index(label_s, self.classes)
        if problem or label is None:  # a label that is no class is one of _cell_problem's
            return problem or f"{here}: label {label_s!r} is no class; fix the row"
        found = self._image(here, lineno, image)
        if isinstance(found, str):
            return found
        saliency = self._saliency(here, sal) if sal else ("", None)
        if isinstance(saliency, str):
            return saliency
        rel, path = found
        return ManifestRow(lineno, split, label, rel, saliency[0], subset, path, saliency[1])

    def _image(self, here: str, lineno: int, image: str) -> tuple[str, Path] | str:
        """(path relative to the manifest folder, absolute path) of an image cell, or its problem:
        outside the folder, listed before, or missing."""
        root = self.manifest.parent
        res = resolve_inside(root, image)
        if isinstance(res, str):
            return f"{here}: {image}: {res}; move the file inside {root} or remove the row"
        rel, path = res
        if rel in self.seen:
            return (
                f"{here}: {image}: duplicate image path (also on line {self.seen[rel]}); remove "
                f"one of the rows"
            )
        self.seen[rel] = lineno
        if not path.is_file():
            return (
                f"{here}: {image}: missing image file (no such file under {root}); fix the path or "
                f"remove the row"
            )
        return rel, path

    def _saliency(self, here: str, sal: str) -> tuple[str, Path] | str:
        """(relative, absolute path) of a non-empty saliency cell, or its problem."""
        root = self.manifest.parent
        res = resolve_inside(root, sal)
        if isinstance(res, str):
            return (
                f"{here}: {sal}: saliency map: {res}; move the map inside {root} or empty the cell"
            )
        if not res[1].is_file():
            return (
                f"{here}: {sal}: unreadable saliency map (no such file under {root}); fix the path "
                f"or empty the saliency cell"
            )
        return res


def label_index(cell: str, classes: tuple[str, ...] | None) -> int | None:
    """The class index of a label cell, or None when it is no class: binary (classes None) "0" or
    "1"; K classes: a declared class name, else an index "0".."K-1" (a name wins, so a class
    named "1" is the class of that name)."""
    if classes is None:
        return int(cell) if cell in ("0", "1") else None
    if cell in classes:
        return classes.index(cell)
    if cell.isascii() and cell.isdigit() and int(cell) < len(classes) and cell == str(int(cell)):
        return int(cell)
    return None


def _cell_problem(
    here: str,
    split: str,
    label_s: str,
    image: str,
    subset: str,
    classes: tuple[str, ...] | None = None,
) -> str | None:
    """The first problem of a row's split, subset, label and image cells (no file access)."""
    if split not in SPLITS:
        return f"{here}: split {split!r} is not one of {', '.join(SPLITS)}; fix the row"
    if subset and (bad := name_problem(subset)):
        return f"{here}: subset {bad}; rename the subset in the manifest"
    if classes is not None and label_index(label_s, classes) is None:
        return (
            f"{here}: {image or '(no image)'}: label {label_s!r} is none of the {len(classes)} "
            f"classes {', '.join(classes)} (or their indices 0..{len(classes) - 1}); fix the row, "
            f"or the class list (datasets.<name>.classes)"
        )
    if classes is None and label_s not in ("0", "1"):
        return (
            f"{here}: {image or '(no image)'}: label {label_s!r} is outside the two classes 0 and 1 "
            f"(1 = attack/synthetic/abnormal); fix the row, or convert class names with "
            f"`python -m salience import ... --label-map NAME=0|1`, or, for a dataset with more "
            f"than two classes, declare them (`datasets.<name>.classes` in the config, "
            f"`prepare --classes a,b,c`)"
        )
    if not image:
        return f"{here}: empty image path; fill it in or remove the row"
    why = reserved_name(subset) if subset else None
    if why:
        return f"{here}: {image}: subset {why}; rename the subset in the manifest"
    return None


def check_splits(
    manifest: Path, rows: list[ManifestRow], classes: tuple[str, ...] | None = None
) -> None:
    """Every split non-empty; each split holds every class (AUROC, and for K > 2 one-vs-rest AUROC
    per class, is undefined otherwise). DataError naming the split and the missing class."""
    for split in SPLITS:
        labels = {r.label for r in rows if r.split == split}
        if not labels:
            raise DataError(
                f"{manifest}: split {split!r} is empty; every dataset needs train, val and test rows "
                f"(assign some rows to {split!r})"
            )
        if classes is not None and len(classes) > 2:
            missing = [c for i, c in enumerate(classes) if i not in labels]
            if missing:
                raise DataError(
                    f"{manifest}: split {split!r} has no rows of class {missing[0]!r} (label "
                    f"{classes.index(missing[0])}); every split needs every class (one-vs-rest "
                    f"AUROC is undefined otherwise): add {missing[0]!r} rows to {split!r}"
                )
            continue
        if len(labels) == 1:
            (only,) = labels
            raise DataError(
                f"{manifest}: split {split!r} has only label {only} rows; it needs both classes "
                f"(AUROC is undefined with one class): add label {1 - only} rows to {split!r}"
            )


def write_manifest(path: str | os.PathLike, rows: list[tuple[str, int, str, str, str]]) -> None:
    """Atomically write a manifest from (split, label, image, saliency, subset) tuples."""
    from salience.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)
