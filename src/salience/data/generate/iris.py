"""Iris-like presentation-attack detection: bona fide eyes vs seven attack types.

An eye: skin, sclera, an iris annulus with radial fibres (the salient region), a dark pupil and
a specular highlight. Every attack type (label 1) replaces part of the natural fibre texture (a
weak cue shared by all attacks, so held-out types are not hopeless) and adds its own signature
inside the iris, with contrast `signal_strength`. Nothing class-related lies outside the iris.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from salience.data.generate.common import Knobs, Sample, blob, ellipse, grid, period, smooth_noise

NAME = "iris"
CODE = 11
#: binary: labels 0/1 written as numbers (a multi-class task names its classes)
CLASSES: tuple[str, ...] | None = None
SUBSETS = (
    "artificial",
    "textured_contacts",
    "post_mortem",
    "printouts",
    "printouts_contacts",
    "synthetic",
    "diseased",
)
DEFAULTS: dict[str, Any] = {
    "signal_strength": 0.08,
    "shortcut_kind": "corner",
    "shortcut_contrast": 0.8,
}

# fraction of the natural fibre texture every attack loses (the shared "liveness" cue)
SHARED_LOSS = 0.3


def _signature(
    subset: str,
    rng: np.random.Generator,
    yy: np.ndarray,
    xx: np.ndarray,
    *,
    cy: float,
    cx: float,
    R: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(luminance pattern in about [-1, 1], RGB tint direction, extra fibre loss) of one attack;
    the iris has centre (cy, cx) and radius R in pixels."""
    size = yy.shape[0]
    d = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    p = period(size, 4.0)
    ph = rng.uniform(0, 2 * np.pi, 2)
    none = np.zeros(3)
    if subset == "artificial":  # painted dot lattice, no fibres
        pat = (
            np.cos(2 * np.pi * xx / p + ph[0]) * np.cos(2 * np.pi * yy / p + ph[1]) > 0.3
        ) * 2.0 - 1.0
        return pat, none, 0.5
    if subset == "textured_contacts":  # printed concentric rings on the lens
        return np.sign(np.sin(2 * np.pi * d / p + ph[0])), none, 0.2
    if subset == "post_mortem":  # clouded cornea: bluish-grey haze over a granular opacity
        grain = ndimage.gaussian_filter(rng.standard_normal(d.shape), 0.7)
        return 0.4 + 1.3 * grain / (grain.std() + 1e-9), np.array([-0.4, 0.1, 0.5]), 0.4
    if subset == "printouts":  # halftone screen at 45 degrees
        u, v = (xx + yy) / np.sqrt(2), (xx - yy) / np.sqrt(2)
        return (
            np.sign(np.cos(2 * np.pi * u / p + ph[0]) * np.cos(2 * np.pi * v / p + ph[1])),
            none,
            0.3,
        )
    if subset == "printouts_contacts":
        u, v = (xx + yy) / np.sqrt(2), (xx - yy) / np.sqrt(2)
        half = np.sign(np.cos(2 * np.pi * u / p + ph[0]) * np.cos(2 * np.pi * v / p + ph[1]))
        return 0.5 * half + 0.5 * np.sign(np.sin(2 * np.pi * d / p + ph[1])), none, 0.3
    if subset == "synthetic":  # too regular: one pure angular frequency, smooth otherwise
        return np.sin(rng.integers(10, 16) * theta + ph[0]) * 1.3, none, 0.7
    if subset == "diseased":  # scattered dark lesions and a reddish blotch
        pat = np.zeros_like(d)
        for _ in range(rng.integers(10, 16)):
            r, a = rng.uniform(0.4, 0.95) * R, rng.uniform(0, 2 * np.pi)
            pat -= 3.5 * blob(yy, xx, cy + r * np.sin(a), cx + r * np.cos(a), max(0.7, R * 0.07))
        return pat, np.array([0.5, -0.2, -0.3]), 0.1
    raise ValueError(f"unknown iris subset {subset!r}")


def render(rng: np.random.Generator, label: int, subset: str, k: Knobs) -> Sample:
    size = k.image_size
    yy, xx = grid(size)
    cy, cx = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    R = size * rng.uniform(0.26, 0.31)
    r = R * rng.uniform(0.35, 0.5)
    skin = np.array([0.75, 0.58, 0.5]) * rng.uniform(0.7, 1.1)
    img = np.ones((size, size, 3)) * skin + 0.04 * smooth_noise(rng, size, size / 10)[..., None]
    sclera = ellipse(yy, xx, cy, cx, R * rng.uniform(1.05, 1.25), R * rng.uniform(1.7, 2.0))
    img = img * (1 - sclera[..., None]) + sclera[..., None] * np.array([0.88, 0.86, 0.84])
    d = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    iris = ellipse(yy, xx, cy, cx, R, R)
    pupil = ellipse(yy, xx, cy, cx, r, r)
    annulus = np.clip(iris - pupil, 0, 1)
    hue = [np.array([0.45, 0.3, 0.18]), np.array([0.3, 0.4, 0.55]), np.array([0.35, 0.42, 0.28])]
    base = hue[rng.integers(0, 3)] * rng.uniform(0.8, 1.2)
    fibres = np.zeros_like(d)
    for _ in range(6):
        fibres += np.cos(rng.integers(18, 48) * theta + rng.uniform(0, 2 * np.pi)) * rng.uniform(
            0.5, 1
        )
    fibres = fibres / 3.0 * (0.7 + 0.3 * np.cos(2 * np.pi * d / (R * rng.uniform(0.4, 0.6))))
    fibres += 0.6 * smooth_noise(rng, size, 0.8)
    loss = 0.0
    pattern, tint = np.zeros_like(d), np.zeros(3)
    if label == 1:
        pattern, tint, extra = _signature(subset, rng, yy, xx, cy=cy, cx=cx, R=R)
        loss = min(1.0, SHARED_LOSS + extra) * min(1.0, k.signal_strength / 0.1)
    iris_rgb = base * (1 + 0.25 * (1 - loss) * fibres[..., None])
    iris_rgb = iris_rgb + k.signal_strength * (pattern[..., None] + tint * 0.8)
    img = img * (1 - iris[..., None]) + iris[..., None] * iris_rgb
    img = img * (1 - pupil[..., None]) + pupil[..., None] * 0.05
    hy, hx = cy - r * 0.4 + rng.uniform(-1, 1), cx + r * 0.4 + rng.uniform(-1, 1)
    img += 0.6 * blob(yy, xx, hy, hx, max(0.7, size / 80))[..., None]
    img += 0.02 * rng.standard_normal((size, size, 3))  # sensor noise
    target = np.clip(annulus + 0.4 * pupil, 0, 1)
    return Sample(image=img, target=target, keep_out=iris)
