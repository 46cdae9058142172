"""Data layer: the generated benchmark, manifests and importers, `prepare`, and the prepared-data reader.

- `salience.data.generate`  — the embedded benchmark (iris / face / chest), PNGs + manifest.csv
- `salience.data.manifest`  — the manifest format (`split,label,image,saliency,subset`) and its checks
- `salience.data.importers` — CYBORG's headerless CSV + heatmap folder, the 4-column CSV
- `salience.data.fixations`, `salience.data.regions` — eye-tracking fixations and drawn regions
  to PNG maps + manifest (shared parts in `salience.data.mapimport`)
- `salience.data.prepare`   — validate, decode and resize once into memory-mappable .npy arrays
- `salience.data.prepared`  — `PreparedDataset`, the reader every later step uses

Formats and the bad-input table: docs/data.md; the benchmark card: docs/benchmark.md.
"""

from __future__ import annotations

import os

SPLITS = ("train", "val", "test")

__all__ = ["SPLITS", "check_replaceable"]


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
