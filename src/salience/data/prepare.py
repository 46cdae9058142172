"""`prepare`: validate a manifest, decode and resize every image and map once, and store them as
memory-mappable .npy arrays (layout: salience.data.prepared, docs/data.md).

- Table-level checks (salience.data.manifest.read_manifest) run before anything is written.
- Arrays are created with `numpy.lib.format.open_memmap` and then filled by sequential chunked
  writes through a plain file handle, so neither the whole array nor its dirty pages sit in RAM.
- Everything is written into a temporary sibling folder that is renamed at the end
  (salience.io.atomic_dir): an error leaves no output and no temporary folder behind.
- Decoding (EXIF orientation, bit depth, map values, area resizing of maps): salience.data.decode.
- Images: PIL `.convert("RGB")`, `Image.BILINEAR` resize to S×S (antialiased, squash, no crop).
- Maps: their own values in float (RGB maps via `.convert("L")`, with a warning), resized to S×S
  by area, min-max to 0..255; the CAM-grid maps are `resize_map` of that stored map, exactly what
  the reader would compute for a grid that was not prepared.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from salience.data import SPLITS, check_replaceable
from salience.data.decode import (
    DECODE_ERRORS,
    IMAGE_BITS_AUTO,
    NUMERIC_MAP_MODES,
    Decoded,
    DecodeProblem,
    DecodeStats,
    check_png_colour_depth,
    decode,
    image_rgb,
    map_values,
    minmax,
    parse_image_bits,
    reason,
    resample,
)
from salience.data.duplicates import FIX as DUP_FIX
from salience.data.duplicates import CrossSplit
from salience.data.manifest import ManifestRow, Problems, read_manifest, where
from salience.data.prepared import GridMaps
from salience.errors import ConfigError, DataError
from salience.io import atomic_dir, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHUNK_ROWS = 512
WARN_EXAMPLES = 2  # rows quoted in the one line each warning kind gets


class ArrayWriter:
    """Create an .npy file of a fixed shape and fill it row by row in chunks."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        try:
            mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        except OSError as exc:  # full disk: name the file (the CLI prints one line)
            exc.filename = exc.filename or str(path)
            raise
        offset = mm.offset
        del mm
        self.path = path
        self.fh = open(path, "r+b")  # noqa: SIM115 - closed in close()
        self.fh.seek(offset)
        self.buf = np.zeros((CHUNK_ROWS, *shape[1:]), dtype=dtype)
        self.n = 0

    def add(self, row: np.ndarray) -> None:
        self.buf[self.n] = row
        self.n += 1
        if self.n == CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.n:
            try:
                self.fh.write(self.buf[: self.n].tobytes())
            except OSError as exc:  # full disk: name the file (the CLI prints one line)
                exc.filename = exc.filename or str(self.path)
                raise
            self.n = 0

    def close(self) -> None:
        self.flush()
        self.fh.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


class Warnings:
    """Per-row warnings collected by kind and logged once per kind at the end (issue 14): one
    line with the count and the first two rows' messages, so a layout with many resized maps (52
    in a normal CYBORG import) reads as one line, not fifty."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, msg: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < WARN_EXAMPLES:
            shown.append(msg)

    def summary(self) -> None:
        """Log one line per kind: the message itself for one row, else count + two examples."""
        for kind, n in sorted(self.counts.items()):
            ex = self.examples[kind]
            if n == 1:
                log.warning("%s", ex[0])
            else:
                log.warning("%d rows: %s; e.g. %s", n, kind, " | ".join(ex))


def _load_image(
    row: ManifestRow, manifest: Path, size: int, h: hashlib._Hash, image_bits: str | int
) -> tuple[np.ndarray, Decoded]:
    try:
        data = row.image_path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{where(manifest, row.line)}: {row.image}: cannot read the image file ({exc.strerror}); "
            f"check its permissions or remove the row"
        ) from None
    h.update(row.image.encode() + b"\0" + data)
    here = f"{where(manifest, row.line)}: {row.image}"
    try:
        im, orientation = decode(data)
        check_png_colour_depth(data, im)
        arr, bits = image_rgb(im, size, image_bits)
    except DecodeProblem as exc:
        raise DataError(f"{here}: {exc}; re-export the file or remove the row") from None
    except DECODE_ERRORS as exc:
        raise DataError(
            f"{here}: unreadable or truncated image ({reason(exc)}); re-export the file or remove the row"
        ) from None
    return arr, Decoded(im.size, orientation, bits)


def _load_map(
    row: ManifestRow,
    manifest: Path,
    size: int,
    image: Decoded,
    h: hashlib._Hash,
    warn: Warnings,
) -> np.ndarray | None:
    """The map at S×S (decode.resample in float, then min-max to 0..255, uint8), or None when it
    carries no information."""
    assert row.saliency_path is not None
    here = where(manifest, row.line)
    try:
        data = row.saliency_path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{here}: {row.saliency}: unreadable saliency map ({exc.strerror}); check its "
            f"permissions or empty the saliency cell"
        ) from None
    h.update(row.saliency.encode() + b"\0" + data)
    try:
        im, _ = decode(data)
        check_png_colour_depth(data, im)
        mode = im.mode
        a = map_values(im)
    except DecodeProblem as exc:
        raise DataError(
            f"{here}: {row.saliency}: {exc}; re-export the map or empty the saliency cell"
        ) from None
    except DECODE_ERRORS as exc:
        raise DataError(
            f"{here}: {row.saliency}: unreadable saliency map ({reason(exc)}); re-export the map or empty the "
            f"saliency cell"
        ) from None
    if mode not in NUMERIC_MAP_MODES:
        warn.add(
            "colour map converted to greyscale",
            f"{here}: {row.saliency}: {mode} saliency map converted to greyscale with "
            f"PIL convert('L'); store maps as 8-bit greyscale PNGs to silence this",
        )
    map_wh = (a.shape[1], a.shape[0])
    if map_wh != image.size:
        turned = ""
        if image.orientation in (5, 6, 7, 8) and map_wh == image.size[::-1]:
            turned = (
                f"; the image's EXIF orientation {image.orientation} turns it, and maps are taken "
                f"as drawn on the displayed image"
            )
        warn.add(
            "map size differs from its image",
            f"{here}: {row.saliency}: map is {map_wh[0]}×{map_wh[1]} but its image is "
            f"{image.size[0]}×{image.size[1]}{turned}; resized to {size}×{size} like the image "
            f"(check that the map belongs to this image)",
        )
    m = minmax(resample(a, (size, size)))
    if m is None:
        kind = "all-zero map" if float(a.max()) == 0 else "constant map"
        warn.add(
            "all-zero or constant map (row kept without a map)",
            f"{here}: {row.saliency}: {kind} carries no saliency; the row is kept without a map "
            f"(has_map false). Fix the map or empty the saliency cell to silence this",
        )
        return None
    return np.round(m * 255.0).astype(np.uint8)


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


def prepare(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    image_size: int,
    cam_grids: list[int] | tuple[int, ...] = (),
    name: str | None = None,
    image_bits: str | int = IMAGE_BITS_AUTO,
    allow_cross_split_duplicates: bool = False,
) -> Path:
    """Prepare the dataset of `manifest` into `out` (replaced atomically); returns `out`.

    `image_bits`: bit depth that >8-bit integer images are scaled by, or 'auto' (per image: the
    smallest of 8, 10, 12, 14, 16 bits holding its maximum); docs/data.md §3 "Decoding".
    A picture stored in two splits is an error unless `allow_cross_split_duplicates`
    (salience.data.duplicates); then it is a counted warning.
    """
    manifest, out = Path(manifest), Path(out)
    if image_size < 8:
        raise ConfigError(f"image_size {image_size}: must be at least 8")
    try:
        image_bits = parse_image_bits(image_bits)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    grids = sorted({int(g) for g in cam_grids})
    if any(g < 1 for g in grids):
        raise ConfigError(f"cam_grids {list(cam_grids)}: every grid must be ≥ 1")
    rows = read_manifest(manifest)
    check_out_outside_sources(out, manifest, rows)
    check_replaceable(out, "meta.json", "a prepared dataset", prepared_files)
    n, s = len(rows), image_size
    warn = Warnings()
    problems = Problems()
    src_hash = hashlib.sha256()
    sizes: Counter[str] = Counter()
    decoded = DecodeStats(image_bits)
    has_map: list[bool] = []
    cross = CrossSplit(str(manifest))
    with atomic_dir(out) as tmp:
        w_img = ArrayWriter(tmp / "images.npy", (n, s, s, 3), np.uint8)
        w_map = ArrayWriter(tmp / "maps.npy", (n, s, s), np.uint8)
        w_cam = {g: ArrayWriter(tmp / f"maps_cam{g}.npy", (n, g, g), np.float32) for g in grids}
        on_grid = GridMaps(grids)
        zero_map = np.zeros((s, s), np.uint8)
        try:
            for row in rows:
                try:
                    img, info = _load_image(row, manifest, s, src_hash, image_bits)
                    hmap = None
                    if row.saliency_path is not None:
                        hmap = _load_map(row, manifest, s, info, src_hash, warn)
                    dup = cross.check(row, img)
                    if dup and not allow_cross_split_duplicates:
                        raise DataError(f"{dup}; {DUP_FIX}")
                    if dup:
                        warn.add("picture in two splits (allowed)", f"{dup}; kept (allowed)")
                except DataError as exc:
                    problems.add(str(exc))
                    if problems.full():
                        break
                    img, hmap, info = np.zeros((s, s, 3), np.uint8), None, Decoded((0, 0), 1, None)
                sizes[f"{info.size[0]}x{info.size[1]}"] += 1
                decoded.add(info)
                has_map.append(hmap is not None)
                w_img.add(img)
                w_map.add(hmap if hmap is not None else zero_map)
                for g, m in on_grid.of(
                    hmap, f"{where(manifest, row.line)}: {row.saliency}"
                ).items():
                    w_cam[g].add(m)
        finally:
            for w in (w_img, w_map, *w_cam.values()):
                w.close()
        problems.raise_if_any()  # inside atomic_dir: the temporary folder is removed
        warn.summary()
        on_grid.report(warn.counts)
        decoded.report(warn.counts)
        with open(tmp / "index.csv", "w", newline="") as fh:
            fh.write(",".join(("split", "label", "subset", "image", "has_map")) + "\n")
            for r, hm in zip(rows, has_map):
                fh.write(f"{r.split},{r.label},{_q(r.subset)},{_q(r.image)},{hm}\n")
        files = ["index.csv", "images.npy", "maps.npy", *(f"maps_cam{g}.npy" for g in grids)]
        meta = {
            "format_version": FORMAT_VERSION,
            "name": name or out.name,
            "image_size": s,
            "cam_grids": grids,
            "n": n,
            "counts": _counts(rows, has_map),
            "source": {
                "manifest": str(manifest),
                "manifest_sha256": sha256_file(manifest),
                "files_sha256": src_hash.hexdigest(),
                "image_sizes": dict(sizes.most_common(20)),
            },
            "decode": decoded.meta(),
            "warnings": dict(sorted(warn.counts.items())),
            "files": {
                f: {"bytes": (tmp / f).stat().st_size, "sha256": sha256_file(tmp / f)}
                for f in files
            },
        }
        write_json(tmp / "meta.json", meta)
    log.info("prepared %d rows (%d with maps) of %s into %s", n, sum(has_map), manifest, out)
    return out


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


def _q(value: str) -> str:
    """CSV-quote a cell when needed."""
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


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
    )
