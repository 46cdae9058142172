"""Pieces shared by the three generated tasks: knobs, seeding, drawing helpers, the planted
shortcut, human-like maps, the row plan and the writer.

Determinism: every random draw comes from a numpy Generator seeded with
`SeedSequence([seed, task, split, row, stream])`, one stream each for the image content, the
shortcut cue and the human map. So the same seed gives byte-identical PNGs and manifest, and
changing `shortcut_strength` changes only the cues (never the image content or the map); this is
what makes the "oracle" (shortcut_strength 0.5) comparable image for image (docs/benchmark.md).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from scipy import ndimage

from salience.errors import ConfigError

log = logging.getLogger(__name__)

SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
STREAM_CONTENT, STREAM_CUE, STREAM_MAP = 0, 1, 2
SHORTCUT_KINDS = ("corner", "stripes")
TEST_SHORTCUT = ("independent", "reversed", "same")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Knobs:
    """Generator settings (config `datasets.<name>.generator`; docs/benchmark.md explains each)."""

    seed: int = 0
    image_size: int = 48
    n_train: int = 600
    n_val: int = 200
    n_test: int = 600
    #: contrast of the class signal (attack / generator / finding signature) in the salient region
    signal_strength: float = 0.1
    #: P(shortcut cue agrees with the label) in train and val; 0.5 = no shortcut (the oracle)
    shortcut_strength: float = 0.95
    shortcut_kind: str = "corner"
    #: contrast of the shortcut cue
    shortcut_contrast: float = 0.6
    #: test-time cue: independent of the label (default), reversed (P(agree) = 1 − strength), same
    test_shortcut: str = "independent"
    #: 1 = maps close to the ground-truth region; lower = blurrier, shifted, partial, spurious
    map_quality: float = 0.7
    #: face generators present in train/val (all generators appear in test)
    train_subsets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train_subsets"] = list(self.train_subsets)
        return d


KNOB_NAMES = tuple(f.name for f in fields(Knobs))


def make_knobs(
    task_defaults: dict[str, Any], overrides: dict[str, Any], subsets: tuple[str, ...]
) -> Knobs:
    """Task defaults + overrides (None values ignored) → validated Knobs."""
    values = dict(task_defaults)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in KNOB_NAMES:
            raise ConfigError(
                f"generator: unknown setting {key!r} (settings: {', '.join(KNOB_NAMES)})"
            )
        values[key] = value
    values["train_subsets"] = tuple(values.get("train_subsets") or ())
    k = Knobs(**values)
    problems = []
    if k.image_size < 16:
        problems.append(f"image_size {k.image_size} < 16")
    for name in ("n_train", "n_val", "n_test"):
        if getattr(k, name) < 4:
            problems.append(f"{name} {getattr(k, name)} < 4 (each split needs both classes)")
    if not 0.0 <= k.shortcut_strength <= 1.0:
        problems.append(f"shortcut_strength {k.shortcut_strength} outside [0, 1]")
    if not 0.0 <= k.map_quality <= 1.0:
        problems.append(f"map_quality {k.map_quality} outside [0, 1]")
    if k.signal_strength < 0 or k.shortcut_contrast < 0:
        problems.append("signal_strength and shortcut_contrast must be ≥ 0")
    if k.shortcut_kind not in SHORTCUT_KINDS:
        problems.append(f"shortcut_kind {k.shortcut_kind!r} (choose {', '.join(SHORTCUT_KINDS)})")
    if k.test_shortcut not in TEST_SHORTCUT:
        problems.append(f"test_shortcut {k.test_shortcut!r} (choose {', '.join(TEST_SHORTCUT)})")
    unknown = [s for s in k.train_subsets if s not in subsets]
    if unknown:
        problems.append(f"train_subsets {unknown} not among {', '.join(subsets)}")
    if problems:
        raise ConfigError("generator: " + "; ".join(problems))
    return k


def rng_for(seed: int, task_code: int, split: str, row: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([seed, task_code, SPLIT_CODES[split], row, stream])
    )


# ------------------------------------------------------------------------------ drawing helpers
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), each size×size float64."""
    c = np.arange(size, dtype=np.float64) + 0.5
    return np.meshgrid(c, c, indexing="ij")


def ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    """Anti-aliased filled ellipse in [0, 1] (a ~1-px soft edge)."""
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - d) * min(ry, rx) + 0.5, 0.0, 1.0)


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Low-frequency noise with unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return n / (n.std() + 1e-12)


def blob(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, sigma: float) -> np.ndarray:
    return np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * sigma**2)))


def period(size: int, base: float) -> float:
    """A pattern period in pixels that scales with the image and never drops below 3 px."""
    return max(3.0, base * size / 48.0)


# ------------------------------------------------------------------------------ planted shortcut
def cue_for(rng: np.random.Generator, label: int, split: str, k: Knobs) -> int:
    """1 = the cue is drawn. Train/val: it agrees with the label with P = shortcut_strength."""
    u = rng.random()
    if split == "test" and k.test_shortcut == "independent":
        return int(u < 0.5)
    p = k.shortcut_strength
    if split == "test" and k.test_shortcut == "reversed":
        p = 1.0 - p
    return label if u < p else 1 - label


def apply_shortcut(
    img: np.ndarray, cue: int, rng: np.random.Generator, k: Knobs, keep_out: np.ndarray
) -> None:
    """Draw the nuisance cue in place, outside the salient region (`keep_out` > 0 is protected).

    corner:  a square (side ≈ S/8) in one of the four corners, picked at random, blended with
             weight `shortcut_contrast` towards black on bright backgrounds, white on dark ones.
    stripes: horizontal stripes over the background, peak-to-peak `shortcut_contrast`.
    """
    if not cue:
        return
    size = img.shape[0]
    allowed = np.clip(1.0 - ndimage.gaussian_filter(keep_out, 1.5) * 2.0, 0.0, 1.0)[..., None]
    if k.shortcut_kind == "corner":
        side = max(3, round(size / 8))
        m = max(1, size // 24)
        y0 = m if rng.random() < 0.5 else size - m - side
        x0 = m if rng.random() < 0.5 else size - m - side
        patch = np.zeros((size, size, 1))
        patch[y0 : y0 + side, x0 : x0 + side] = 1.0
        target = 0.0 if img[y0 : y0 + side, x0 : x0 + side].mean() > 0.5 else 1.0
        img += k.shortcut_contrast * patch * allowed * (target - img)
    else:
        yy, _ = grid(size)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * yy / period(size, 4.0) + phase)[..., None]
        img += 0.5 * k.shortcut_contrast * stripes * allowed


# ------------------------------------------------------------------------------ human-like maps
def human_map(rng: np.random.Generator, target: np.ndarray, quality: float) -> np.ndarray:
    """An imperfect annotation of `target` (float, ≥ 0): shifted, partly missing, with spurious
    fixations, blurred, gamma-jittered; min-max to uint8. Never a copy of the ground truth."""
    size = target.shape[0]
    bad = 1.0 - quality
    yy, xx = grid(size)
    m = target.astype(np.float64).copy()
    if rng.random() < 0.7 * bad:  # partial: a region the annotator skipped
        angle = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(-0.1, 0.2) * size
        side = (np.cos(angle) * (xx - size / 2) + np.sin(angle) * (yy - size / 2)) - off
        m *= 1.0 - rng.uniform(0.6, 1.0) * np.clip(side / 2.0 + 0.5, 0, 1)
    shift = (0.5 + bad * 0.1 * size) * rng.uniform(-1, 1, 2)
    m = ndimage.shift(m, shift, order=1, mode="constant")
    for _ in range(rng.poisson(3.0 * bad)):  # spurious fixations anywhere
        cy, cx = rng.uniform(0, size, 2)
        m += rng.uniform(0.2, 0.6) * m.max() * blob(yy, xx, cy, cx, size * rng.uniform(0.03, 0.07))
    m = ndimage.gaussian_filter(m, size * (0.02 + 0.05 * bad))
    lo, hi = m.min(), m.max()
    if hi - lo < 1e-9:
        return np.zeros((size, size), np.uint8)
    m = ((m - lo) / (hi - lo)) ** rng.uniform(0.7, 1.4)
    return np.round(m * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------ tasks and rows
@dataclass
class Sample:
    image: np.ndarray  # S×S×3 float, roughly [0, 1]
    target: np.ndarray  # S×S ground-truth salient region (for the human map)
    keep_out: np.ndarray  # S×S region the shortcut must not touch


class Task(Protocol):
    NAME: str
    CODE: int
    CLASSES: tuple[str, ...] | None  # None: binary, labels written 0/1; else label i is CLASSES[i]
    SUBSETS: tuple[str, ...]
    DEFAULTS: dict[str, Any]

    def render(self, rng: np.random.Generator, label: int, subset: str, k: Knobs) -> Sample: ...


@dataclass
class Row:
    split: str
    index: int
    label: int
    subset: str
    cue: int = 0
    files: dict[str, str] = field(default_factory=dict)


def plan_rows(task: Task, k: Knobs) -> list[Row]:
    """Balanced labels; label-1 rows cycle through the subsets present in the split; order shuffled."""
    rows: list[Row] = []
    for split, n in (("train", k.n_train), ("val", k.n_val), ("test", k.n_test)):
        subs = subsets_in(task, k, split)
        n1 = n // 2
        labels = [0] * (n - n1) + [1] * n1
        subsets = [""] * (n - n1) + [subs[i % len(subs)] if subs else "" for i in range(n1)]
        order = np.random.default_rng([k.seed, task.CODE, SPLIT_CODES[split], 99]).permutation(n)
        rows += [Row(split, i, labels[j], subsets[j]) for i, j in enumerate(order)]
    return rows


def subsets_in(task: Task, k: Knobs, split: str) -> tuple[str, ...]:
    if k.train_subsets and split != "test":
        return tuple(s for s in task.SUBSETS if s in k.train_subsets)
    return task.SUBSETS


def render_row(task: Task, row: Row, k: Knobs) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 S×S×3, map uint8 S×S) of one row; sets row.cue."""
    s = task.render(
        rng_for(k.seed, task.CODE, row.split, row.index, STREAM_CONTENT), row.label, row.subset, k
    )
    row.cue = cue_for(
        rng_for(k.seed, task.CODE, row.split, row.index, STREAM_CUE), row.label, row.split, k
    )
    img = s.image
    apply_shortcut(
        img,
        row.cue,
        rng_for(k.seed, task.CODE, row.split, row.index, STREAM_CUE + 10),
        k,
        s.keep_out,
    )
    img_u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    hmap = human_map(
        rng_for(k.seed, task.CODE, row.split, row.index, STREAM_MAP), s.target, k.map_quality
    )
    return img_u8, hmap


def save_png(arr: np.ndarray, path: Path) -> None:
    """Deterministic PNG (no timestamps or text chunks; fixed compression)."""
    mode = "L" if arr.ndim == 2 else "RGB"
    Image.fromarray(arr, mode=mode).save(path, format="PNG", compress_level=6)


def write_dataset(
    task: Task,
    k: Knobs,
    out: Path,
    rows: list[Row] | None = None,
    render: Callable[[Row], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[Row]:
    """Render every row into `out` (an empty folder): images/, maps/, manifest.csv, cues.csv,
    generator.json. Maps are written for every row (only train maps are ever used in training).
    `rows`/`render` default to the binary plan_rows/render_row (a multi-class task passes its
    own). With `task.CLASSES` set, labels and cues are written as class names and generator.json
    gains `classes`; else as 0/1."""
    rows = plan_rows(task, k) if rows is None else rows
    for split in SPLIT_CODES:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "maps" / split).mkdir(parents=True, exist_ok=True)
    for row in rows:
        img, hmap = render_row(task, row, k) if render is None else render(row)
        stem = f"{row.split}_{row.index:05d}"
        row.files = {
            "image": f"images/{row.split}/{stem}.png",
            "saliency": f"maps/{row.split}/{stem}.png",
        }
        save_png(img, out / row.files["image"])
        save_png(hmap, out / row.files["saliency"])
    classes = task.CLASSES
    name = (lambda i: i) if classes is None else classes.__getitem__
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["split", "label", "image", "saliency", "subset"])
        for r in rows:
            w.writerow([r.split, name(r.label), r.files["image"], r.files["saliency"], r.subset])
    with open(out / "cues.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image", "cue"])
        for r in rows:
            w.writerow([r.files["image"], name(r.cue)])
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "task": task.NAME,
        "knobs": k.to_json(),
    }
    if classes is not None:
        info["classes"] = list(classes)
    (out / "generator.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return rows
