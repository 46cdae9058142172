"""Data layer: the generated benchmark, manifests and importers, `prepare`, and the prepared-data reader.

- `salience.data.generate`  — the embedded benchmark (iris / face / chest), PNGs + manifest.csv
- `salience.data.manifest`  — the manifest format (`split,label,image,saliency,subset`) and its checks
- `salience.data.importers` — CYBORG's headerless CSV + heatmap folder, the 4-column CSV
- `salience.data.prepare`   — validate, decode and resize once into memory-mappable .npy arrays
- `salience.data.prepared`  — `PreparedDataset`, the reader every later step uses

Formats and the bad-input table: docs/data.md; the benchmark card: docs/benchmark.md.
"""

from __future__ import annotations

import os

SPLITS = ("train", "val", "test")

__all__ = ["SPLITS", "usual_dir_mode", "check_replaceable"]


def check_replaceable(out: str | os.PathLike, marker: str, what: str) -> None:
    """Refuse to replace an existing non-empty folder that is not an earlier output of ours (it
    would be deleted by the atomic rename)."""
    from salience.errors import DataError

    out = os.fspath(out)
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, marker)):
        raise DataError(
            f"output folder {out} exists and is not {what} (no {marker}); it would be replaced: "
            f"choose a new or empty folder, or remove it yourself"
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"output {out} exists and is not a folder; choose another --out")


def usual_dir_mode(path: str | os.PathLike) -> None:
    """Give a folder made by tempfile.mkdtemp (0700), and the files in it made by mkstemp (0600),
    the usual modes under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, 0o666 & ~umask)
