"""The same picture in two splits (issue 10.5): a copy under another name, a symlink, or the same
pixels re-encoded (PNG ↔ BMP) in train and test lets the test score what the network has seen.

`prepare` hashes every image as it will be stored (S×S×3 uint8 after decoding and resizing), so a
byte copy, a symlink and a lossless re-encoding all give the same key. A key seen in another split
is an error by default; `datasets.<name>.allow_cross_split_duplicates: true` (CLI
`--allow-cross-split-duplicates`) turns it into a counted warning (docs/decisions.md).
"""

from __future__ import annotations

import hashlib

import numpy as np

from salience.data.manifest import ManifestRow

FIX = (
    "a picture in two splits lets the test score what the network was trained or selected on: "
    "remove one of the rows, or allow it with --allow-cross-split-duplicates "
    "(datasets.<name>.allow_cross_split_duplicates: true)"
)


class CrossSplit:
    """Remembers the first row of each stored picture and reports pictures seen in two splits."""

    def __init__(self, manifest: str) -> None:
        self.manifest = manifest
        self.first: dict[bytes, ManifestRow] = {}

    def check(self, row: ManifestRow, img: np.ndarray) -> str | None:
        """'<row> shows the same picture as <earlier row>' when `img` (the stored S×S×3 array of
        `row`) already appeared in another split, else None."""
        key = hashlib.sha256(img.tobytes()).digest()
        seen = self.first.setdefault(key, row)
        if seen.split == row.split:
            return None
        size = f"{img.shape[1]}×{img.shape[0]}"
        return (
            f"{self.manifest} line {row.line}: {row.image} ({row.split}) shows the same picture as "
            f"line {seen.line}: {seen.image} ({seen.split}) (identical pixels at {size})"
        )
