"""`prepare`: validate a manifest, decode and resize every image and map once, and store them as
memory-mappable .npy arrays (layout: salience.data.prepared, docs/data.md).

- Table-level checks (salience.data.manifest.read_manifest) run before anything is written.
- Each row is decoded by salience.data.rowload (images: PIL RGB, bilinear to S×S; maps: their own
  values in float, area-resized to S×S, min-max to 0..255) and appended to the arrays by
  salience.data.arrays (chunked writes, nothing whole in RAM); the CAM-grid maps are `resize_map`
  of the stored map, exactly what the reader would compute for a grid that was not prepared.
- Everything is written into a temporary sibling folder that is renamed at the end
  (salience.io.atomic_dir): an error leaves no output and no temporary folder behind.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salience.data import SPLITS, check_replaceable
from salience.data.arrays import PreparedArrays, array_files, sha256_file, write_index
from salience.data.decode import IMAGE_BITS_AUTO, Decoded, DecodeStats, parse_image_bits
from salience.data.duplicates import FIX as DUP_FIX
from salience.data.duplicates import CrossSplit
from salience.data.manifest import ManifestRow, Problems, read_manifest, where
from salience.data.rowload import RowDecoder
from salience.errors import ConfigError, DataError
from salience.io import atomic_dir, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _counts(rows: list[ManifestRow], has_map: list[bool]) -> dict:
    out: dict = {}
    for split in SPLITS:
        sel = [i for i, r in enumerate(rows) if r.split == split]
        labels = Counter(str(rows[i].label) for i in sel)
        subsets: dict[str, dict[str, int]] = {}
        for i in sel:
            if rows[i].subset:
                d = subsets.setdefault(rows[i].subset, {})
                d[str(rows[i].label)] = d.get(str(rows[i].label), 0) + 1
        out[split] = {
            "total": len(sel),
            "label": dict(sorted(labels.items())),
            "subset": dict(sorted(subsets.items())),
            "with_map": sum(has_map[i] for i in sel),
        }
    return out


@dataclass
class _Pass:
    """One pass over the manifest's rows: the row decoder and what the pass collects besides the
    arrays (problems, image sizes, decoding statistics, which rows have a map, duplicates)."""

    rows: RowDecoder
    allow_cross_split_duplicates: bool
    problems: Problems = field(default_factory=Problems)
    sizes: Counter[str] = field(default_factory=Counter)
    decoded: DecodeStats = field(init=False)
    has_map: list[bool] = field(default_factory=list)
    cross: CrossSplit = field(init=False)

    def __post_init__(self) -> None:
        self.decoded = DecodeStats(self.rows.image_bits)
        self.cross = CrossSplit(str(self.rows.manifest))

    def decode(self, row: ManifestRow) -> tuple[np.ndarray, np.ndarray | None, Decoded]:
        """(image, map or None, decoding info) of `row`; raises DataError for a bad row."""
        img, info = self.rows.image(row)
        hmap = None
        if row.saliency_path is not None:
            hmap = self.rows.map(row, info)
        dup = self.cross.check(row, img)
        if dup and not self.allow_cross_split_duplicates:
            raise DataError(f"{dup}; {DUP_FIX}")
        if dup:
            self.rows.warn.add("picture in two splits (allowed)", f"{dup}; kept (allowed)")
        return img, hmap, info

    def fill(self, arrays: PreparedArrays, rows: list[ManifestRow]) -> None:
        """Append every row to `arrays` (a zero row in place of a bad one, whose problem is
        collected); stops after the first MAX_REPORTED problems."""
        s = self.rows.size
        manifest = self.rows.manifest
        for row in rows:
            try:
                img, hmap, info = self.decode(row)
            except DataError as exc:
                self.problems.add(str(exc))
                if self.problems.full():
                    break
                img, hmap, info = np.zeros((s, s, 3), np.uint8), None, Decoded((0, 0), 1, None)
            self.sizes[f"{info.size[0]}x{info.size[1]}"] += 1
            self.decoded.add(info)
            self.has_map.append(hmap is not None)
            arrays.add(img, hmap, f"{where(manifest, row.line)}: {row.saliency}")

    def report(self, arrays: PreparedArrays) -> None:
        """Log the collected warnings, one line per kind (they are counted in meta.json)."""
        warn = self.rows.warn
        warn.summary(log)
        arrays.on_grid.report(warn.counts)
        self.decoded.report(warn.counts)


def prepare(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    image_size: int,
    cam_grids: list[int] | tuple[int, ...] = (),
    *,
    name: str | None = None,
    image_bits: str | int = IMAGE_BITS_AUTO,
    allow_cross_split_duplicates: bool = False,
    classes: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Prepare the dataset of `manifest` into `out` (replaced atomically); returns `out`.

    `classes`: the class names in label order for a manifest labelled with names or with indices
    0..K-1 (salience.data.manifest.read_manifest); None: binary labels 0/1. meta.json records them
    as `classes` for K > 2 only, so a binary dataset's files are those of before (issue 12).

    `image_bits`: bit depth that >8-bit integer images are scaled by, or 'auto' (per image: the
    smallest of 8, 10, 12, 14, 16 bits holding its maximum); docs/data.md §3 "Decoding".
    A picture stored in two splits is an error unless `allow_cross_split_duplicates`
    (salience.data.duplicates); then it is a counted warning.
    """
    manifest, out = Path(manifest), Path(out)
    image_bits, grids = _check_options(image_size, cam_grids, image_bits)
    rows = read_manifest(manifest, classes)
    check_out_outside_sources(out, manifest, rows)
    check_replaceable(out, "meta.json", "a prepared dataset", prepared_files)
    p = _Pass(RowDecoder(manifest, image_size, image_bits), allow_cross_split_duplicates)
    with atomic_dir(out) as tmp:
        arrays = PreparedArrays(tmp, len(rows), image_size, grids)
        try:
            p.fill(arrays, rows)
        finally:
            arrays.close()
        p.problems.raise_if_any()  # inside atomic_dir: the temporary folder is removed
        p.report(arrays)
        write_index(tmp / "index.csv", rows, p.has_map)
        meta = _meta(tmp, name or out.name, p, rows, grids)
        if classes is not None and len(classes) > 2:
            meta["classes"] = [str(c) for c in classes]
        write_json(tmp / "meta.json", meta)
    log.info(
        "prepared %d rows (%d with maps) of %s into %s", len(rows), sum(p.has_map), manifest, out
    )
    return out


def _check_options(
    image_size: int, cam_grids: list[int] | tuple[int, ...], image_bits: str | int
) -> tuple[str | int, list[int]]:
    """(parsed image_bits, sorted distinct grids); ConfigError for a size, depth or grid out of
    range."""
    if image_size < 8:
        raise ConfigError(f"image_size {image_size}: must be at least 8")
    try:
        image_bits = parse_image_bits(image_bits)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    grids = sorted({int(g) for g in cam_grids})
    if any(g < 1 for g in grids):
        raise ConfigError(f"cam_grids {list(cam_grids)}: every grid must be ≥ 1")
    return image_bits, grids


def _meta(tmp: Path, name: str, p: _Pass, rows: list[ManifestRow], grids: list[int]) -> dict:
    """meta.json of the prepared dataset written into `tmp` (its files must be complete)."""
    manifest = p.rows.manifest
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "image_size": p.rows.size,
        "cam_grids": grids,
        "n": len(rows),
        "counts": _counts(rows, p.has_map),
        "source": {
            "manifest": str(manifest),
            "manifest_sha256": sha256_file(manifest),
            "files_sha256": p.rows.src_hash.hexdigest(),
            "image_sizes": dict(p.sizes.most_common(20)),
        },
        "decode": p.decoded.meta(),
        "warnings": dict(sorted(p.rows.warn.counts.items())),
        "files": {
            f: {"bytes": (tmp / f).stat().st_size, "sha256": sha256_file(tmp / f)}
            for f in array_files(grids)
        },
    }


def prepared_files(folder: Path, meta: dict) -> list[str] | None:
    """The files a prepared dataset consists of, from its meta.json (None: not written by us)."""
    files = meta.get("files")
    if not isinstance(meta.get("format_version"), int) or not isinstance(files, dict):
        return None
    if "image_size" not in meta or "index.csv" not in files:
        return None
    return [str(f) for f in files]


def check_out_outside_sources(out: Path, manifest: Path, rows: list[ManifestRow]) -> None:
    """Refuse an output folder that is, contains or lies above the manifest or any file it lists:
    replacing it would delete the source data (issue 10.1). Raises DataError."""
    if not out.exists():
        return  # a folder that does not exist holds nothing (existing files have existing parents)
    tops = {Path(os.path.abspath(out)), Path(os.path.realpath(out))}

    def inside(p: Path) -> bool:
        for q in {Path(os.path.abspath(p)), Path(os.path.realpath(p))}:
            if any(q == top or top in q.parents for top in tops):
                return True
        return False

    sources = [(manifest, "the manifest")]
    for r in rows:
        sources.append((r.image_path, f"{where(manifest, r.line)}: image"))
        if r.saliency_path is not None:
            sources.append((r.saliency_path, f"{where(manifest, r.line)}: saliency map"))
    for path, what in sources:
        if inside(path):
            raise DataError(
                f"output folder {out} contains {what} {path}; preparing there would delete the "
                f"source data: choose an --out outside {manifest.parent} (e.g. data/prepared/<name>)"
            )


def prepare_from_config(cfg: dict, dataset: str) -> Path:
    """`prepare --config CFG --dataset NAME`: manifest, output, image_size and cam_grids from the config."""
    from salience.config import manifest_path, prepared_dir

    if dataset not in cfg["datasets"]:
        raise ConfigError(
            f"dataset {dataset!r} is not defined in the config (defined: {', '.join(cfg['datasets'])})"
        )
    ds = cfg["datasets"][dataset]
    if ds.get("folds") == "leave_one_subset_out":
        from salience.data.folds import check_fold_subsets

        check_fold_subsets(manifest_path(cfg, dataset), dataset, list(ds["holdout_subsets"]))
    return prepare(
        manifest_path(cfg, dataset),
        prepared_dir(cfg, dataset),
        image_size=int(ds["image_size"]),
        cam_grids=list(ds.get("cam_grids") or []),
        name=dataset,
        image_bits=ds.get("image_bits", "auto"),
        allow_cross_split_duplicates=bool(ds.get("allow_cross_split_duplicates", False)),
        classes=ds.get("classes"),
    )
