"""The files `prepare` writes (layout: salience.data.prepared, docs/data.md): the .npy arrays,
filled row by row in chunks, the index CSV, and the sha256 of each file for meta.json.

Arrays are created with `numpy.lib.format.open_memmap` and then filled by sequential chunked
writes through a plain file handle, so neither the whole array nor its dirty pages sit in RAM.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from salience.data.manifest import ManifestRow
from salience.data.prepared import GridMaps

CHUNK_ROWS = 512


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


class PreparedArrays:
    """images.npy (n×S×S×3 uint8), maps.npy (n×S×S uint8, zeros for a row without a map) and
    maps_cam<g>.npy (n×g×g float32, `GridMaps`) of one prepared dataset, filled row by row."""

    def __init__(self, folder: Path, n: int, size: int, grids: list[int]) -> None:
        self.images = ArrayWriter(folder / "images.npy", (n, size, size, 3), np.uint8)
        self.maps = ArrayWriter(folder / "maps.npy", (n, size, size), np.uint8)
        self.cam = {
            g: ArrayWriter(folder / f"maps_cam{g}.npy", (n, g, g), np.float32) for g in grids
        }
        self.on_grid = GridMaps(grids)
        self.zero_map = np.zeros((size, size), np.uint8)

    def add(self, img: np.ndarray, hmap: np.ndarray | None, where: str) -> None:
        """Append one row; `where` names the row in the warning about maps lost on a CAM grid."""
        self.images.add(img)
        self.maps.add(hmap if hmap is not None else self.zero_map)
        for g, m in self.on_grid.of(hmap, where).items():
            self.cam[g].add(m)

    def close(self) -> None:
        for w in (self.images, self.maps, *self.cam.values()):
            w.close()


def array_files(grids: list[int]) -> list[str]:
    """The file names of a prepared dataset with CAM grids `grids`, in meta.json order."""
    return ["index.csv", "images.npy", "maps.npy", *(f"maps_cam{g}.npy" for g in grids)]


def write_index(path: Path, rows: list[ManifestRow], has_map: list[bool]) -> None:
    """index.csv: split,label,subset,image,has_map, one line per stored row."""
    with open(path, "w", newline="") as fh:
        fh.write(",".join(("split", "label", "subset", "image", "has_map")) + "\n")
        for r, hm in zip(rows, has_map):
            fh.write(f"{r.split},{r.label},{_q(r.subset)},{_q(r.image)},{hm}\n")


def _q(value: str) -> str:
    """CSV-quote a cell when needed."""
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()
