"""A 3-class chest task mirroring the MIMIC-CXR eye-gaze data (normal / congestive heart failure /
pneumonia; Karargyris et al. 2021, the data behind Unet+Gaze and Gaze-GNN), for issue 12.

The film is drawn as in `chest` (torso, two lung fields crossed by ribs, spine, heart); each
finding has its own salient region, and the human-like map follows a reader's gaze on it:

  normal     (label `normal`)     no finding; the reader dwells on one or two spots of the lungs
                                   and, on half the films, glances at the heart (so that a map
                                   alone does not give the class away)
  chf        (label `chf`)        congestive heart failure: an enlarged cardiac silhouette and
                                   bilateral perihilar haze (oedema); the map covers the heart
                                   and both hila: central, below the middle of the image
  pneumonia  (label `pneumonia`)  a focal consolidation in the lower, outer zone of one lung;
                                   the map covers it: lateral and low

The finding's contrast is `signal_strength`. The planted shortcut points at a class: every image
carries one cue, a square in the corner of its class (`corner`: normal top-left, chf top-right,
pneumonia bottom-left) or stripes at the class's angle (`stripes`: 0°, 60°, 120°). In train and
val the cue's class is the label with P = `shortcut_strength`, else one of the two other classes
(uniform); at test it is uniform over the three (`independent`), follows `reversed` (P(agree) =
1 − strength) or `same`. As in `chest`, the cue never touches the torso.

Registered as task `gaze3` in `salience.data.generate.TASKS` (its datasets declare
`classes: [normal, chf, pneumonia]`, CLASSES' order, so that label index i is CLASSES[i]); files
and determinism are those of the other tasks (common.py): manifest.csv (label = class name), images/, maps/,
cues.csv (image, the class the cue points to), generator.json (task, knobs, classes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from salience.data.generate import common
from salience.data.generate.chest import anatomy
from salience.data.generate.common import (
    SPLIT_CODES,
    STREAM_CONTENT,
    STREAM_CUE,
    STREAM_MAP,
    Knobs,
    Row,
    Sample,
    blob,
    ellipse,
    grid,
    human_map,
    make_knobs,
    period,
    rng_for,
    smooth_noise,
)

NAME = "gaze3"
CODE = 14
CLASSES: tuple[str, ...] = ("normal", "chf", "pneumonia")
SUBSETS: tuple[str, ...] = ()
DEFAULTS: dict[str, Any] = {
    "signal_strength": 0.12,
    "shortcut_kind": "corner",
    "shortcut_contrast": 0.6,
}
#: where each finding's human map is centred, as (y, distance from the midline) in fractions of
#: the image side (measured on the maps at map_quality 1: the centroid of the cells ≥ 0.8 × max;
#: tests/test_generate_gaze3.py): chf central below the middle, pneumonia low and lateral
REGIONS: dict[str, tuple[float, float]] = {"chf": (0.60, 0.05), "pneumonia": (0.64, 0.19)}
#: corner (row, column: 0 = top/left, 1 = bottom/right) of each class's cue under `corner`
CUE_CORNERS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0))


def knobs(**overrides: Any) -> Knobs:
    """Common defaults, then this task's, then `overrides` (ConfigError on a bad value)."""
    return make_knobs({**Knobs().to_json(), **DEFAULTS}, overrides, SUBSETS)


def _film(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """The normal film and its geometry: chest.anatomy, then texture (the heart's ellipse is
    kept as geometry `heart` and drawn by `render`)."""
    f = anatomy(rng, size)
    cy, cx = f["cy"], f["cx"]
    f["heart"] = (cy + size * 0.12, cx + size * 0.06, size * 0.11, size * 0.12)
    f["img"] += 0.05 * smooth_noise(rng, size, size / 12) * f["torso"]
    return f


def render(rng: np.random.Generator, label: int, subset: str, k: Knobs) -> Sample:
    """One film of class `label` (index into CLASSES): image S×S×3, the gaze target, the torso."""
    size = k.image_size
    f = _film(rng, size)
    yy, xx, lungs, img = f["yy"], f["xx"], f["lungs"], f["img"]
    hy, hx, hry, hrx = f["heart"]
    gain = 2.0 * k.signal_strength
    gaze = np.zeros_like(img)
    if label == 1:  # CHF: cardiomegaly + perihilar oedema (both sides)
        grow = 1.0 + gain * rng.uniform(1.6, 2.4)
        heart = ellipse(yy, xx, hy - hry * (grow - 1) / 2, hx, hry * grow, hrx * grow)
        haze = np.zeros_like(img)
        for side, ly, lx, lry, lrx in f["lung_geo"]:
            py, px = ly + lry * rng.uniform(0.0, 0.2), lx - side * lrx * rng.uniform(0.4, 0.7)
            haze += blob(yy, xx, py, px, size * rng.uniform(0.06, 0.08)) * rng.uniform(0.8, 1.2)
        texture = 1.0 + 0.4 * smooth_noise(rng, size, 1.0)
        img += 0.15 * heart + gain * np.clip(haze, 0, 1.2) * texture * lungs
        gaze = np.maximum(0.8 * heart, np.clip(haze, 0, 1))
    else:
        img += 0.15 * ellipse(yy, xx, hy, hx, hry, hrx)
    if label == 2:  # pneumonia: consolidation in the lower, outer zone of one lung
        side, ly, lx, lry, lrx = f["lung_geo"][rng.integers(0, 2)]
        finding = np.zeros_like(img)
        for _ in range(rng.integers(1, 3)):
            fy, fx = ly + lry * rng.uniform(0.25, 0.6), lx + side * lrx * rng.uniform(0.0, 0.45)
            finding += blob(yy, xx, fy, fx, size * rng.uniform(0.04, 0.07)) * rng.uniform(0.8, 1.2)
        finding = np.clip(finding, 0, 1.2)
        img += gain * finding * (1.0 + 0.4 * smooth_noise(rng, size, 1.0)) * lungs
        gaze = np.clip(finding, 0, 1)
    img += 0.02 * rng.standard_normal(img.shape)
    if label == 0:  # drawn after the image, which stays unchanged: a normal film's reading
        for _ in range(rng.integers(1, 3)):
            _, ly, lx, lry, lrx = f["lung_geo"][rng.integers(0, 2)]
            a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * 0.7
            spot = blob(yy, xx, ly + r * lry * np.sin(a), lx + r * lrx * np.cos(a), size * 0.055)
            gaze = np.maximum(gaze, spot * rng.uniform(0.6, 1.0))
        if rng.random() < 0.5:
            gaze = np.maximum(gaze, 0.5 * ellipse(yy, xx, hy, hx, hry, hrx))
    rgb = np.repeat(img[..., None], 3, axis=2)
    return Sample(image=rgb, target=0.5 * lungs + gaze, keep_out=f["torso"])


def cue_for(rng: np.random.Generator, label: int, split: str, k: Knobs) -> int:
    """The class the cue points to: the label with P = shortcut_strength in train/val, else one
    of the other classes (uniform); at test as `test_shortcut` says."""
    u, other = rng.random(), int(rng.integers(1, len(CLASSES)))
    if split == "test" and k.test_shortcut == "independent":
        return int(u * len(CLASSES))
    p = k.shortcut_strength
    if split == "test" and k.test_shortcut == "reversed":
        p = 1.0 - p
    return label if u < p else (label + other) % len(CLASSES)


def apply_cue(
    img: np.ndarray, cue: int, rng: np.random.Generator, k: Knobs, keep_out: np.ndarray
) -> None:
    """Draw the cue of class `cue` in place, outside `keep_out` (as common.apply_shortcut)."""
    size = img.shape[0]
    allowed = np.clip(1.0 - ndimage.gaussian_filter(keep_out, 1.5) * 2.0, 0.0, 1.0)[..., None]
    if k.shortcut_kind == "corner":
        side, m = max(3, round(size / 8)), max(1, size // 24)
        r, c = CUE_CORNERS[cue]
        y0 = m if r == 0 else size - m - side
        x0 = m if c == 0 else size - m - side
        patch = np.zeros((size, size, 1))
        patch[y0 : y0 + side, x0 : x0 + side] = 1.0
        target = 0.0 if img[y0 : y0 + side, x0 : x0 + side].mean() > 0.5 else 1.0
        img += k.shortcut_contrast * patch * allowed * (target - img)
    else:
        yy, xx = grid(size)
        angle = cue * np.pi / 3
        phase = rng.uniform(0, 2 * np.pi)
        along = np.cos(angle) * yy + np.sin(angle) * xx
        stripes = np.sin(2 * np.pi * along / period(size, 4.0) + phase)[..., None]
        img += 0.5 * k.shortcut_contrast * stripes * allowed


def plan_rows(k: Knobs) -> list[Row]:
    """Per split n // 3 rows of each class, the remainder to the first classes; order shuffled."""
    rows: list[Row] = []
    for split, n in (("train", k.n_train), ("val", k.n_val), ("test", k.n_test)):
        labels = [i % len(CLASSES) for i in range(n)]
        labels.sort()
        order = np.random.default_rng([k.seed, CODE, SPLIT_CODES[split], 99]).permutation(n)
        rows += [Row(split, i, labels[j], "") for i, j in enumerate(order)]
    return rows


def render_row(row: Row, k: Knobs) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 S×S×3, map uint8 S×S) of one row; sets row.cue (a class index)."""
    s = render(rng_for(k.seed, CODE, row.split, row.index, STREAM_CONTENT), row.label, "", k)
    row.cue = cue_for(
        rng_for(k.seed, CODE, row.split, row.index, STREAM_CUE), row.label, row.split, k
    )
    img = s.image
    apply_cue(
        img, row.cue, rng_for(k.seed, CODE, row.split, row.index, STREAM_CUE + 10), k, s.keep_out
    )
    img_u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    hmap = human_map(
        rng_for(k.seed, CODE, row.split, row.index, STREAM_MAP), s.target, k.map_quality
    )
    return img_u8, hmap


def write_dataset(k: Knobs, out: Path) -> list[Row]:
    """Render every row into `out` (an empty folder): common.write_dataset with this task's rows,
    renderer and class names."""
    return common.write_dataset(
        sys.modules[__name__], k, out, plan_rows(k), lambda r: render_row(r, k)
    )  # type: ignore[arg-type]
