"""One manifest row of `prepare`, decoded: its image and its saliency map at S×S, with the
per-row problems as one-line DataErrors and the per-row warnings collected by kind.

- Decoding (EXIF orientation, bit depth, map values, area resizing of maps): salience.data.decode.
- Images: PIL `.convert("RGB")`, `Image.BILINEAR` resize to S×S (antialiased, squash, no crop).
- Maps: their own values in float (RGB maps via `.convert("L")`, with a warning), resized to S×S
  by area, min-max to 0..255 (docs/data.md §3).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salience.data.decode import (
    DECODE_ERRORS,
    NUMERIC_MAP_MODES,
    Decoded,
    DecodeProblem,
    check_png_colour_depth,
    decode,
    image_rgb,
    map_values,
    minmax,
    reason,
    resample,
)
from salience.data.manifest import ManifestRow, where
from salience.errors import DataError

WARN_EXAMPLES = 2  # rows quoted in the one line each warning kind gets


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

    def summary(self, log: logging.Logger) -> None:
        """Log one line per kind on `log`: the message itself for one row, else count + two
        examples."""
        for kind, n in sorted(self.counts.items()):
            ex = self.examples[kind]
            if n == 1:
                log.warning("%s", ex[0])
            else:
                log.warning("%d rows: %s; e.g. %s", n, kind, " | ".join(ex))


@dataclass
class RowDecoder:
    """Decodes the rows of `manifest` to `size`×`size`; every file read is added to `src_hash`
    (meta.json's files_sha256) and every per-row warning to `warn`."""

    manifest: Path
    size: int
    image_bits: str | int  # 'auto' or 8..16 (salience.data.decode.parse_image_bits)
    warn: Warnings = field(default_factory=Warnings)
    src_hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def image(self, row: ManifestRow) -> tuple[np.ndarray, Decoded]:
        """The S×S×3 uint8 image of `row` and what decoding found (size, orientation, bits)."""
        try:
            data = row.image_path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{where(self.manifest, row.line)}: {row.image}: cannot read the image file "
                f"({exc.strerror}); check its permissions or remove the row"
            ) from None
        self.src_hash.update(row.image.encode() + b"\0" + data)
        here = f"{where(self.manifest, row.line)}: {row.image}"
        try:
            im, orientation = decode(data)
            check_png_colour_depth(data, im)
            arr, bits = image_rgb(im, self.size, self.image_bits)
        except DecodeProblem as exc:
            raise DataError(f"{here}: {exc}; re-export the file or remove the row") from None
        except DECODE_ERRORS as exc:
            raise DataError(
                f"{here}: unreadable or truncated image ({reason(exc)}); re-export the file or "
                f"remove the row"
            ) from None
        return arr, Decoded(im.size, orientation, bits)

    def map(self, row: ManifestRow, image: Decoded) -> np.ndarray | None:
        """The map at S×S (decode.resample in float, then min-max to 0..255, uint8), or None when
        it carries no information. `image`: what decoding found for the row's image."""
        assert row.saliency_path is not None
        here = where(self.manifest, row.line)
        a = self._map_values(row, here)
        self._check_map_size(row, here, (a.shape[1], a.shape[0]), image)
        m = minmax(resample(a, (self.size, self.size)))
        if m is None:
            kind = "all-zero map" if float(a.max()) == 0 else "constant map"
            self.warn.add(
                "all-zero or constant map (row kept without a map)",
                f"{here}: {row.saliency}: {kind} carries no saliency; the row is kept without a "
                f"map (has_map false). Fix the map or empty the saliency cell to silence this",
            )
            return None
        return np.round(m * 255.0).astype(np.uint8)

    def _map_values(self, row: ManifestRow, here: str) -> np.ndarray:
        """The map file's values in float at its own size (a colour map with a warning)."""
        assert row.saliency_path is not None
        try:
            data = row.saliency_path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{here}: {row.saliency}: unreadable saliency map ({exc.strerror}); check its "
                f"permissions or empty the saliency cell"
            ) from None
        self.src_hash.update(row.saliency.encode() + b"\0" + data)
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
                f"{here}: {row.saliency}: unreadable saliency map ({reason(exc)}); re-export the "
                f"map or empty the saliency cell"
            ) from None
        if mode not in NUMERIC_MAP_MODES:
            self.warn.add(
                "colour map converted to greyscale",
                f"{here}: {row.saliency}: {mode} saliency map converted to greyscale with "
                f"PIL convert('L'); store maps as 8-bit greyscale PNGs to silence this",
            )
        return a

    def _check_map_size(
        self, row: ManifestRow, here: str, map_wh: tuple[int, int], image: Decoded
    ) -> None:
        """Warn when the map's width×height differs from its image's (it is resized anyway)."""
        if map_wh == image.size:
            return
        turned = ""
        if image.orientation in (5, 6, 7, 8) and map_wh == image.size[::-1]:
            turned = (
                f"; the image's EXIF orientation {image.orientation} turns it, and maps are taken "
                f"as drawn on the displayed image"
            )
        s = self.size
        self.warn.add(
            "map size differs from its image",
            f"{here}: {row.saliency}: map is {map_wh[0]}×{map_wh[1]} but its image is "
            f"{image.size[0]}×{image.size[1]}{turned}; resized to {s}×{s} like the image "
            f"(check that the map belongs to this image)",
        )
