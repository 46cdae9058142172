"""Reader of a prepared dataset (`python -m salience prepare`), the only way later steps see data.

Layout of data/prepared/<dataset>/ (docs/data.md):
  meta.json           counts per split/label/subset, sizes, sha256 of every file
  index.csv           split,label,subset,image,has_map — row i ↔ array index i
  images.npy          N×S×S×3 uint8
  maps.npy            N×S×S uint8, min-max normalised to 0..255 (0 where has_map is False)
  maps_cam<g>.npy     N×g×g float32 in [0, 1] for each prepared CAM grid g

Arrays are opened with `np.load(mmap_mode="r")`: nothing is read until a batch is sliced, so a
test set far larger than RAM streams in constant memory (`release_pages` drops the pages already
read from this process's resident set; BENCHMARKS.md "Data preparation").
"""

from __future__ import annotations

import logging
import mmap
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from salience.config import reserved_name
from salience.data import SPLITS
from salience.data.decode import minmax, resample
from salience.errors import DataError

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("split", "label", "subset", "image", "has_map")
REQUIRED_FILES = ("meta.json", "index.csv", "images.npy", "maps.npy")


def resize_map(map_u8: np.ndarray, grid: int | tuple[int, int]) -> np.ndarray:
    """A 2-D map (uint8, or float of any range) → float32 grid×grid in [0, 1].

    Area mean pooling in float (`salience.data.decode.resample`: PIL `Image.BOX` on an 'F' image
    when shrinking, bilinear when growing), then per-map min-max, as CYBORG's loader orders it
    (resize first, then min-max; reference: docs/decisions.md "Human maps on the CAM grid"). Mean
    pooling in float keeps every fixation: a sparse map never rounds to all zeros. A map that is
    constant on the grid (all zero included) gives all zeros, never NaN; the reader treats such a
    row as having no map at that grid (`PreparedDataset.has_map_cam`).
    """
    a = np.asarray(map_u8)
    if a.ndim != 2:
        raise ValueError(f"resize_map: expected a 2-D map, got shape {a.shape}")
    gh, gw = (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError("resize_map: the map holds NaN or infinite values")
    m = minmax(resample(a, (gh, gw)))
    return np.zeros((gh, gw), np.float32) if m is None else m.astype(np.float32)


def constant_on_grid(cam_maps: np.ndarray) -> np.ndarray:
    """Bool per row of an N×g×g array from `resize_map`: True where the row is all zero (its map is
    constant at that grid). Read in chunks, so a memory-mapped array stays out of RAM."""
    out = np.zeros(len(cam_maps), dtype=bool)
    for start in range(0, len(cam_maps), 4096):
        block = np.asarray(cam_maps[start : start + 4096])
        out[start : start + len(block)] = block.reshape(len(block), -1).max(axis=1) <= 0
    return out


def constant_grid_message(n: int, grid: int, examples: list[str]) -> str:
    """One warning line for all maps that are constant on a CAM grid (count and two examples)."""
    return (
        f"{n} saliency map(s) are constant on the {grid}×{grid} CAM grid (e.g. {', '.join(examples)}); "
        f"those rows have no map at that grid (CAM losses and CAM–human agreement skip them). Use "
        f"a finer cam grid or denser maps if this is unexpected"
    )


class GridMaps:
    """`prepare`'s CAM-grid maps of each row. A map that is constant once pooled to a grid is stored
    as zeros (`resize_map`); such rows are reported in one warning line per grid (count and two
    examples), never one line per row."""

    def __init__(self, grids: list[int]) -> None:
        self.lost: dict[int, list[str]] = {int(g): [] for g in grids}

    def of(self, hmap: np.ndarray | None, where: str) -> dict[int, np.ndarray]:
        """grid → g×g float32 map (zeros where `hmap` is None); `where` names the row for warnings."""
        out = {}
        for g in self.lost:
            out[g] = np.zeros((g, g), np.float32) if hmap is None else resize_map(hmap, g)
            if hmap is not None and float(out[g].max()) <= 0:
                self.lost[g].append(where)
        return out

    def report(self, counts: Counter[str]) -> None:
        """Log one line per grid with lost maps and count them in `counts` (meta.json warnings)."""
        for g, lost in self.lost.items():
            if lost:
                log.warning("%s", constant_grid_message(len(lost), g, lost[:2]))
                counts[f"map constant on the {g}x{g} CAM grid (no map at that grid)"] = len(lost)


class PreparedDataset:
    """A prepared dataset, memory-mapped. See the module docstring for the files."""

    def __init__(self, root: str | Path) -> None:
        from salience.io import read_json

        self.root = Path(root)
        missing = [f for f in REQUIRED_FILES if not (self.root / f).is_file()]
        if missing:
            what = (
                "does not exist"
                if not self.root.is_dir()
                else f"is incomplete (no {', '.join(missing)})"
            )
            raise DataError(
                f"prepared data folder {self.root} {what}; run `python -m salience prepare ...` "
                f"(--config CFG --dataset NAME, or --manifest CSV --out {self.root} --image-size N)"
            )
        self.meta: dict = read_json(self.root / "meta.json")
        self.name: str = self.meta.get("name", self.root.name)
        self.image_size: int = int(self.meta["image_size"])
        self.cam_grids: list[int] = [int(g) for g in self.meta.get("cam_grids", [])]
        index = pd.read_csv(
            self.root / "index.csv",
            dtype={"split": str, "subset": str, "image": str},
            keep_default_na=False,
            na_values=[],
        )
        if tuple(index.columns) != INDEX_COLUMNS:
            raise DataError(
                f"{self.root / 'index.csv'}: columns {list(index.columns)} are not {list(INDEX_COLUMNS)}; "
                f"run `python -m salience prepare ...` again"
            )
        for sub in sorted(set(index["subset"])):
            why = reserved_name(sub) if sub else None
            if why:
                raise DataError(
                    f"{self.root / 'index.csv'}: subset {why}; rename the subset in the manifest "
                    f"and run `python -m salience prepare ...` again"
                )
        index["label"] = index["label"].astype(np.int64)
        index["has_map"] = index["has_map"].astype(str).str.lower().isin(("true", "1"))
        self.index: pd.DataFrame = index
        self._check_sizes()
        self.images: np.ndarray = self._load("images.npy")
        self.maps: np.ndarray = self._load("maps.npy")
        n, s = len(index), self.image_size
        if self.images.shape != (n, s, s, 3) or self.maps.shape != (n, s, s):
            raise DataError(
                f"prepared data folder {self.root} is inconsistent (images {self.images.shape}, maps "
                f"{self.maps.shape}, {n} index rows, size {s}); run `python -m salience prepare ...` again"
            )
        self._cam: dict[int, np.ndarray] = {}
        self._has_cam: dict[int, np.ndarray] = {}

    def check_config(self, dataset: str, ds_cfg: dict, manifest: Path | None = None) -> None:
        """Stop when this folder does not hold what `datasets.<dataset>` of the config asks for
        (issue 10.6): another image_size or cam_grids (a folder prepared by hand, or before the
        config changed), or an earlier version of `manifest` (when that file is here to compare).
        Raises DataError naming the folder, the key and the fix."""
        fix = f"prepare it again (python -m salience prepare --config <config> --dataset {dataset})"
        want = int(ds_cfg["image_size"])
        if self.image_size != want:
            raise DataError(
                f"{self.root}: prepared at image_size {self.image_size}, but datasets.{dataset}."
                f"image_size is {want}; {fix} or set image_size back to {self.image_size}"
            )
        grids = sorted({int(g) for g in ds_cfg.get("cam_grids") or []})
        if grids != sorted(self.cam_grids):
            raise DataError(
                f"{self.root}: prepared with cam_grids {sorted(self.cam_grids)}, but datasets."
                f"{dataset}.cam_grids is {grids}; {fix} or set cam_grids to {sorted(self.cam_grids)}"
            )
        self._check_classes(dataset, ds_cfg, fix)
        recorded = self.meta.get("source", {}).get("manifest_sha256")
        if manifest is not None and recorded and Path(manifest).is_file():
            from salience.data.arrays import sha256_file

            now = sha256_file(Path(manifest))
            if now != recorded:
                raise DataError(
                    f"{self.root}: prepared from another version of {manifest} (sha256 "
                    f"{recorded[:12]}…, now {now[:12]}…); {fix}"
                )

    def _check_classes(self, dataset: str, ds_cfg: dict, fix: str) -> None:
        """DataError when datasets.<dataset>.classes (K > 2) differs from the prepared classes."""
        want = [str(c) for c in ds_cfg.get("classes") or []]
        if len(want) <= 2:
            want = ["0", "1"]  # binary: names only map the labels to 0/1 at prepare time
        if want != self.classes:
            raise DataError(
                f"{self.root}: prepared with classes {self.classes}, but datasets.{dataset}.classes "
                f"is {want if len(want) > 2 else 'binary (0/1)'}; {fix}"
            )

    def _check_sizes(self) -> None:
        """Compare every array's byte size with meta.json (a cut copy or a full disk shows here,
        before numpy fails on it)."""
        for name, info in sorted(self.meta.get("files", {}).items()):
            path = self.root / name
            if path.is_file() and path.stat().st_size != info.get("bytes"):
                raise DataError(
                    f"prepared data folder {self.root} is damaged: {name} has {path.stat().st_size} "
                    f"bytes, meta.json records {info.get('bytes')} (cut copy or full disk?); run "
                    f"`python -m salience prepare ...` again"
                )

    def _load(self, name: str) -> np.ndarray:
        try:
            return np.load(self.root / name, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise DataError(
                f"prepared data folder {self.root}: {name} is not a readable .npy array ({exc}); "
                f"run `python -m salience prepare ...` again"
            ) from None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def classes(self) -> list[str]:
        """Class names in label-index order: meta.json `classes` (K > 2 datasets), else ["0", "1"]
        (binary: 1 = attack / synthetic / abnormal)."""
        return [str(c) for c in self.meta.get("classes") or ["0", "1"]]

    @property
    def num_classes(self) -> int:
        """K, the number of classes (labels are int64 in [0, K))."""
        return len(self.classes)

    @property
    def labels(self) -> np.ndarray:
        return self.index["label"].to_numpy(dtype=np.int64)

    def maps_cam(self, grid: int) -> np.ndarray:
        """N×g×g float32 human maps on the CAM grid: the stored array when `grid` was prepared,
        else computed once from `maps` with `resize_map` (cached on this object)."""
        grid = int(grid)
        if grid in self._cam:
            return self._cam[grid]
        path = self.root / f"maps_cam{grid}.npy"
        if path.is_file():
            arr = self._load(path.name)
        else:
            log.info(
                "%s: CAM grid %d was not prepared (prepared: %s); computing it from maps.npy",
                self.name,
                grid,
                self.cam_grids or "none",
            )
            arr = np.zeros((len(self), grid, grid), np.float32)
            has = self.index["has_map"].to_numpy(dtype=bool)
            for i in np.flatnonzero(has):
                arr[i] = resize_map(np.asarray(self.maps[i]), grid)
        self._cam[grid] = arr
        if grid not in self._has_cam:
            lost = self.index["has_map"].to_numpy(dtype=bool) & constant_on_grid(arr)
            self._has_cam[grid] = self.index["has_map"].to_numpy(dtype=bool) & ~lost
            if lost.any():
                log.log(
                    logging.INFO if path.is_file() else logging.WARNING,
                    "%s",
                    constant_grid_message(
                        int(lost.sum()), grid, self.index["image"].to_numpy()[lost][:2].tolist()
                    ),
                )
        return arr

    def has_map_cam(self, grid: int) -> np.ndarray:
        """Bool N: the row has a human map that is not constant on the grid×grid CAM grid.

        `has_map` says a map exists at input resolution; a map can still be constant once pooled to
        the grid (e.g. one fixation in every cell), and then it carries no saliency there: CAM terms
        and the CAM–human agreement skip the row, as for a row without a map (docs/data.md §3).
        """
        grid = int(grid)
        if grid not in self._has_cam:
            self.maps_cam(grid)
        return self._has_cam[grid]

    def rows(
        self,
        split: str,
        exclude_subsets: Iterable[str] = (),
        include_subsets: Iterable[str] | None = None,
    ) -> np.ndarray:
        """Sorted int64 row indices of `split`.

        Subset filters apply to rows that have a subset; rows without one (bona fide / real /
        normal) are always kept, so that e.g. `rows("test", include_subsets=["progan"])` gives the
        real test images plus ProGAN's, and `rows("train", exclude_subsets=[held_out])` a
        leave-one-attack-type-out training set.
        """
        idx = self.index
        if split not in SPLITS:
            raise DataError(f"{self.root}: unknown split {split!r} (splits: train, val, test)")
        keep = np.array(idx["split"] == split, dtype=bool)
        sub = idx["subset"]
        has_sub = np.array(sub != "", dtype=bool)
        exclude = list(exclude_subsets)
        if exclude:
            keep &= ~(has_sub & np.array(sub.isin(exclude), dtype=bool))
        if include_subsets is not None:
            keep &= ~has_sub | np.array(sub.isin(list(include_subsets)), dtype=bool)
        return np.flatnonzero(keep).astype(np.int64)

    def subsets(self, split: str | None = None) -> list[str]:
        """Sorted non-empty subset names (of one split, or of all)."""
        sub = (
            self.index["subset"]
            if split is None
            else self.index.loc[self.index["split"] == split, "subset"]
        )
        return sorted(s for s in set(sub) if s)

    def release_pages(self) -> None:
        """Drop the memory-mapped pages read so far from this process's resident set (they stay in
        the OS page cache). Call it every few hundred batches when streaming a huge split."""
        arrays = [self.images, self.maps, *self._cam.values()]
        for arr in arrays:
            mm = getattr(arr, "_mmap", None)
            if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)
