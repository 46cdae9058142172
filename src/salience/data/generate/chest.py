"""Chest-like anomaly detection: normal vs abnormal, in-set (the same kinds of finding in every split).

A greyscale radiograph: torso, two dark lung fields crossed by ribs, spine and heart. Abnormal
images (label 1) carry one or two soft opacities inside the lung fields with contrast
`signal_strength`. Human maps follow the radiologist's gaze: the lung fields, the finding when
there is one, and one or two spots dwelt on in normal films too (so that a map alone does not
give the label away to a method that reads maps at test time).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salience.data.generate.common import Knobs, Sample, blob, ellipse, grid, period, smooth_noise

NAME = "chest"
CODE = 13
#: binary: labels 0/1 written as numbers (a multi-class task names its classes)
CLASSES: tuple[str, ...] | None = None
SUBSETS: tuple[str, ...] = ()
DEFAULTS: dict[str, Any] = {
    "signal_strength": 0.12,
    "shortcut_kind": "corner",
    "shortcut_contrast": 0.6,
}


def anatomy(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """The film up to the spine, shared with gaze3: grid `yy`, `xx`; image `img` (S×S float);
    `torso` and `lungs` masks; `lung_geo`, one (side, y, x, ry, rx) per lung (side −1 left, +1
    right, in pixels); centre `cy`, `cx`. Draws from `rng` in a fixed order (byte-identical files)."""
    yy, xx = grid(size)
    cx = size * (0.5 + rng.uniform(-0.03, 0.03))
    cy = size * (0.55 + rng.uniform(-0.03, 0.03))
    img = np.full((size, size), rng.uniform(0.03, 0.1))
    torso = ellipse(yy, xx, cy, cx, size * rng.uniform(0.42, 0.47), size * rng.uniform(0.36, 0.41))
    img += torso * rng.uniform(0.45, 0.6)
    lungs = np.zeros_like(img)
    lung_geo = []
    for side in (-1, 1):
        lx = cx + side * size * rng.uniform(0.15, 0.18)
        ly = cy - size * rng.uniform(0.0, 0.04)
        lry, lrx = size * rng.uniform(0.26, 0.3), size * rng.uniform(0.1, 0.12)
        lungs = np.maximum(lungs, ellipse(yy, xx, ly, lx, lry, lrx))
        lung_geo.append((side, ly, lx, lry, lrx))
    img -= lungs * rng.uniform(0.25, 0.32)
    bend = rng.uniform(0.1, 0.2)
    ribs = np.cos(
        2 * np.pi * (yy + bend * (xx - cx) ** 2 / size) / period(size, 6.0) + rng.uniform(0, 6.3)
    )
    img += 0.06 * ribs * lungs
    img += 0.2 * ellipse(yy, xx, cy, cx, size * 0.4, size * 0.045)  # spine / mediastinum
    return {
        "img": img,
        "yy": yy,
        "xx": xx,
        "torso": torso,
        "lungs": lungs,
        "lung_geo": lung_geo,
        "cy": cy,
        "cx": cx,
    }


def render(rng: np.random.Generator, label: int, subset: str, k: Knobs) -> Sample:
    size = k.image_size
    a = anatomy(rng, size)
    yy, xx, img, torso, lungs = a["yy"], a["xx"], a["img"], a["torso"], a["lungs"]
    lung_geo, cy, cx = a["lung_geo"], a["cy"], a["cx"]
    heart = ellipse(yy, xx, cy + size * 0.12, cx + size * 0.06, size * 0.11, size * 0.12)
    img += 0.15 * heart
    img += 0.05 * smooth_noise(rng, size, size / 12) * torso
    finding = np.zeros_like(img)
    if label == 1:
        for _ in range(rng.integers(1, 3)):
            _, ly, lx, lry, lrx = lung_geo[rng.integers(0, 2)]
            a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * 0.7
            fy, fx = ly + r * lry * np.sin(a), lx + r * lrx * np.cos(a)
            finding += blob(yy, xx, fy, fx, size * rng.uniform(0.04, 0.07)) * rng.uniform(0.8, 1.2)
        finding = np.clip(finding, 0, 1.2)
        texture = 1.0 + 0.4 * smooth_noise(rng, size, 1.0)
        img += k.signal_strength * 2.0 * finding * texture * lungs
    img += 0.02 * rng.standard_normal(img.shape)
    rgb = np.repeat(img[..., None], 3, axis=2)
    gaze = np.clip(finding, 0, 1)
    if label == 0:  # a reader also dwells on spots of a normal film: the map alone is no label
        for _ in range(rng.integers(1, 3)):  # drawn after the image, which stays unchanged
            _, ly, lx, lry, lrx = lung_geo[rng.integers(0, 2)]
            a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * 0.7
            spot = blob(yy, xx, ly + r * lry * np.sin(a), lx + r * lrx * np.cos(a), size * 0.055)
            gaze = np.maximum(gaze, spot * rng.uniform(0.6, 1.0))
    target = 0.5 * lungs + gaze
    return Sample(image=rgb, target=target, keep_out=torso)
