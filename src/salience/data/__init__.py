"""Data layer: the generated benchmark, manifests and importers, `prepare`, and the prepared-data reader.

- `salience.data.generate`  — the embedded benchmark (iris / face / chest), PNGs + manifest.csv
- `salience.data.manifest`  — the manifest format (`split,label,image,saliency,subset`) and its checks
- `salience.data.importers` — CYBORG's headerless CSV + heatmap folder, the 4-column CSV
- `salience.data.fixations`, `salience.data.regions` — eye-tracking fixations and drawn regions
  to PNG maps + manifest (shared parts in `salience.data.mapimport`)
- `salience.data.prepare`   — validate, decode and resize once into memory-mappable .npy arrays
  (one row decoded by `salience.data.rowload`, the files written by `salience.data.arrays`)
- `salience.data.prepared`  — `PreparedDataset`, the reader every later step uses

Formats and the bad-input table: docs/data.md; the benchmark card: docs/benchmark.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

SPLITS = ("train", "val", "test")

__all__ = ["SPLITS", "check_replaceable"]


def check_replaceable(
    out: str | os.PathLike,
    marker: str,
    what: str,
    owned: Callable[[Path, dict], Iterable[str] | None],
) -> None:
    """Refuse to replace an existing non-empty folder unless everything in it is an earlier output
    of ours: the atomic rename deletes the old folder, so anything else in it would be lost.

    `marker` (e.g. meta.json) must be a JSON object that `owned(folder, marker_json)` recognises;
    it returns the relative POSIX paths of every file that output consists of (None: not ours).
    A marker file alone proves nothing (a dataset may ship its own meta.json, issue 10.1).
    Raises DataError naming the folder and, when it holds a foreign file, that file.
    """
    from salience.errors import DataError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise DataError(f"output {path} exists and is not a folder; choose another --out")
    if not path.is_dir() or not any(path.iterdir()):
        return
    fix = "choose a new or empty folder, or remove it yourself"
    info = _read_marker(path / marker)
    files = owned(path, info) if info is not None else None
    if files is None:
        why = f"no {marker}" if not (path / marker).exists() else f"its {marker} is not one of ours"
        raise DataError(
            f"output folder {path} exists and is not {what} ({why}); it would be replaced: {fix}"
        )
    known = {*files, marker}
    for foreign in _entries(path):
        if foreign not in known:
            raise DataError(
                f"output folder {path} holds {foreign}, which is not part of {what}; it would be "
                f"deleted when the folder is replaced: {fix}"
            )


def _read_marker(path: Path) -> dict | None:
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _entries(root: Path) -> Iterator[str]:
    """Relative POSIX paths of every file, and of every symlink (to a folder too), under `root`."""
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        links = [d for d in dirnames if (base / d).is_symlink()]
        for name in sorted([*filenames, *links]):
            yield (base / name).relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if d not in links)
