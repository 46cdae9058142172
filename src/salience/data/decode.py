"""Decoding rules for source images and human maps, used by `prepare` and by the prepared-data reader
(docs/data.md §3 "Decoding"; every rule here is stated there).

- Orientation: an EXIF orientation tag (phones, some scanners; JPEG, TIFF, PNG eXIf) is applied on
  decode (`PIL.ImageOps.exif_transpose`) to images *and* maps, so both are in the orientation a
  viewer displays, which is the one annotators drew on.
- Bit depth of images: 8-bit modes go through PIL `convert("RGB")` as before. Integer images of more
  than 8 bits (PIL modes I;16*, I) are scaled by 2^b − 1, where b is the dataset's `image_bits`
  switch, or with `image_bits: auto` the smallest of 8, 10, 12, 14, 16 bits that holds the image's
  maximum (a 12-bit X-ray stored in a 16-bit PNG keeps its 4096 levels instead of 17). Float images
  (mode F) in [0, 1] are taken as they are; others are min-max scaled. NaN/inf is an error.
- Maps are read as float of their own values (8-, 16-bit or float), never through an 8-bit step,
  resized in float (`resample`), and min-max normalised by their own range.
- Resizing a map: by area (PIL `Image.BOX` on a float image: every source pixel counts once, in the
  output cell that contains its centre) along an axis that shrinks, bilinear along one that grows.
  Mean pooling keeps the mass of sparse fixation maps that a bilinear resize in uint8 rounds away.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from collections import Counter
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError)
IMAGE_BITS_AUTO = "auto"
BIT_LADDER = (8, 10, 12, 14, 16)  # `image_bits: auto` picks the first that holds the maximum
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I")
NUMERIC_MAP_MODES = ("L", "1", *HIGH_BIT_MODES, "F")


class DecodeProblem(ValueError):
    """The file decodes but its values are unusable; the message says why (prepare adds the row)."""


def decode(data: bytes) -> tuple[Image.Image, int]:
    """Decode an image file's bytes fully and apply its EXIF orientation.

    Returns the image in display orientation and the EXIF orientation tag that was applied (1 when
    none). Raises one of DECODE_ERRORS on unreadable or truncated data.
    """
    im = Image.open(io.BytesIO(data))
    before = _orientation(im)  # PIL's TIFF reader applies (and drops) the tag itself on load
    im.load()  # raises on truncated / corrupt data
    after = _orientation(im)  # PNG keeps eXIf after the pixel data: known only after load
    if after != 1:
        im = ImageOps.exif_transpose(im)
    return im, after if after != 1 else before


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(0x0112, 1)
    # an out-of-range tag is ignored, as exif_transpose does
    return int(value) if value in (2, 3, 4, 5, 6, 7, 8) else 1


def check_png_colour_depth(data: bytes, im: Image.Image) -> None:
    """Refuse a PNG with 16 bits per colour channel (IHDR colour type 2 or 6) whose data fit in 12
    bits: PIL has no 16-bit colour mode and keeps only each channel's high byte, which leaves such
    an image at most 16 levels. Full-range 16-bit colour is fine (the high byte is its 8-bit
    value). Raises DecodeProblem."""
    if not (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        and data[12:16] == b"IHDR"
        and len(data) > 25
        and data[24] == 16
        and data[25] in (2, 6)
    ):
        return
    top = int(np.asarray(im.convert("RGB")).max())
    if top < 16:
        raise DecodeProblem(
            f"16-bit colour PNG whose values fit in 12 bits: PIL reads only the high byte of each "
            f"channel, which leaves {top + 1} level(s); save it as 16-bit greyscale or 8-bit colour"
        )


def reason(exc: BaseException) -> str:
    """A short reason for a decode failure (no object reprs)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can identify"
    return re.sub(r"\s*<[^>]* at 0x[0-9a-fA-F]+>", "", str(exc)) or type(exc).__name__


def parse_image_bits(value: object) -> str | int:
    """`auto` or an integer bit depth 8…16 (the `image_bits` switch); ValueError otherwise."""
    if value == IMAGE_BITS_AUTO or value is None:
        return IMAGE_BITS_AUTO
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 8 <= value <= 16:
        return value
    raise ValueError(f"image_bits {value!r}: must be 'auto' or an integer from 8 to 16")


def _bits_for(top: float, image_bits: str | int) -> int:
    if image_bits != IMAGE_BITS_AUTO:
        return int(image_bits)
    for b in BIT_LADDER:
        if top <= 2**b - 1:
            return b
    return int(np.ceil(np.log2(top + 1)))  # 32-bit integer data beyond 16 bits


def _finite(a: np.ndarray, what: str) -> None:
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise DecodeProblem(f"{what} holds {bad} NaN or infinite pixel value(s)")


def image_rgb(im: Image.Image, size: int, image_bits: str | int) -> tuple[np.ndarray, int | None]:
    """A decoded image → S×S×3 uint8 (PIL BILINEAR, antialiased when shrinking; squash, no crop).

    Returns the array and the bit depth b the image was scaled by (None for 8-bit modes and float
    images). Raises DecodeProblem for NaN/inf, negative integer values, or a value above the
    `image_bits` range.
    """
    if im.mode not in (*HIGH_BIT_MODES, "F"):
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8), None
    a = np.asarray(im).astype(np.float64)
    bits: int | None = None
    if im.mode == "F":
        _finite(a, "float image")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:  # not a [0, 1] image: its own range
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    else:
        lo, hi = float(a.min()), float(a.max())
        if lo < 0:
            raise DecodeProblem(
                f"{im.mode} image has negative pixel values (min {lo:g}); store it as unsigned integers"
            )
        bits = _bits_for(hi, image_bits)
        if hi > 2**bits - 1:
            raise DecodeProblem(
                f"pixel value {hi:g} exceeds the {bits}-bit range set by image_bits {image_bits}; "
                f"set image_bits to the sensor's bit depth or 'auto'"
            )
        a = a / (2**bits - 1)
    f = Image.fromarray((a * 255.0).astype(np.float32), mode="F")
    if f.size != (size, size):
        f = f.resize((size, size), Image.BILINEAR)
    grey = np.round(np.clip(np.asarray(f, dtype=np.float32), 0, 255)).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2), bits


def map_values(im: Image.Image) -> np.ndarray:
    """A decoded map → H×W float32 of its own values (L, 1: 0…255; 16-bit: 0…65535; F: as stored).

    Colour, palette and alpha maps go through PIL `convert("L")` first (prepare warns). Raises
    DecodeProblem for NaN/inf values.
    """
    if im.mode not in NUMERIC_MAP_MODES or im.mode == "1":
        im = im.convert("L")
    a = np.asarray(im).astype(np.float32)
    _finite(a, "saliency map")
    return a


def resample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D float map to `shape` (rows, cols): area mean along an axis that shrinks, bilinear
    along one that grows. float32 out. A map of the target shape is returned unchanged.

    Area = PIL `Image.BOX` on an 'F' image: each output cell is the mean of the source pixels whose
    centres fall in it (for an integer factor, plain k×k mean pooling, as
    `torch.nn.functional.adaptive_avg_pool2d`); every source pixel counts in exactly one cell, so
    no mass is lost.
    """
    a = np.asarray(a, dtype=np.float32)
    gh, gw = int(shape[0]), int(shape[1])
    if a.shape == (gh, gw):
        return a
    im = Image.fromarray(a, mode="F")
    if im.width != gw:
        im = im.resize((gw, im.height), Image.BOX if gw < im.width else Image.BILINEAR)
    if im.height != gh:
        im = im.resize((gw, gh), Image.BOX if gh < im.height else Image.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def minmax(a: np.ndarray) -> np.ndarray | None:
    """Per-map min-max to [0, 1] (float32), or None for a constant map (all zero included)."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    if not hi - lo > 0:
        return None
    return (a - lo) / (hi - lo)


class Decoded(NamedTuple):
    """What prepare learnt about one source image (display orientation)."""

    size: tuple[int, int]  # (width, height) after the EXIF orientation
    orientation: int  # EXIF orientation applied, 1 = none
    bits: int | None  # bit depth a >8-bit integer image was scaled by (`image_rgb`)


class DecodeStats:
    """EXIF orientations applied and bit depths of >8-bit images, for meta.json and one warning
    when `image_bits: auto` scaled the images of one dataset by different depths."""

    def __init__(self, image_bits: str | int) -> None:
        self.image_bits = image_bits
        self.bits: Counter[int] = Counter()
        self.oriented = 0

    def add(self, info: Decoded) -> None:
        self.oriented += info.orientation != 1
        if info.bits is not None:
            self.bits[info.bits] += 1

    def report(self, counts: Counter[str]) -> None:
        """Log the mixed-depth warning (once) and count it in `counts` (meta.json warnings)."""
        if self.image_bits == IMAGE_BITS_AUTO and len(self.bits) > 1:
            parts = ", ".join(f"{n} as {b}-bit" for b, n in sorted(self.bits.items()))
            log.warning(
                "image_bits auto scaled the >8-bit images by their observed maxima: %s; set the "
                "dataset's image_bits (prepare --image-bits) to the sensor's bit depth to scale "
                "them all alike",
                parts,
            )
            counts["images of one dataset scaled by different bit depths"] = sum(self.bits.values())

    def meta(self) -> dict:
        return {
            "image_bits": self.image_bits,
            "scaled_bits": {str(b): n for b, n in sorted(self.bits.items())},
            "exif_oriented": self.oriented,
        }
