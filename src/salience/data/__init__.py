"""Data layer: the generated benchmark, manifests and importers, `prepare`, and the prepared-data reader.

- `salience.data.generate`  — the embedded benchmark (iris / face / chest), PNGs + manifest.csv
- `salience.data.manifest`  — the manifest format (`split,label,image,saliency,subset`) and its checks
- `salience.data.importers` — CYBORG's headerless CSV + heatmap folder, the 4-column CSV
- `salience.data.prepare`   — validate, decode and resize once into memory-mappable .npy arrays
- `salience.data.prepared`  — `PreparedDataset`, the reader every later step uses

Formats and the bad-input table: docs/data.md; the benchmark card: docs/benchmark.md.
"""

from __future__ import annotations

SPLITS = ("train", "val", "test")

__all__ = ["SPLITS"]
