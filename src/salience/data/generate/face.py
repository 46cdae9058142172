"""Face-like synthetic-image detection: real faces vs six "generators".

A face: background, hair, a skin ellipse with eyes, nose shading and mouth, and fine skin texture.
Every generator (label 1) smooths the skin texture (a weak cue shared by all generators) and adds
its own artefact inside the face with contrast `signal_strength`. By default two generators are
seen in training (`train_subsets`); all six are in the test split, each scored against the same
real test images (per-generator AUROC, DD Table 4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salience.data.generate.common import Knobs, Sample, blob, ellipse, grid, period, smooth_noise

NAME = "face"
CODE = 12
#: binary: labels 0/1 written as numbers (a multi-class task names its classes)
CLASSES: tuple[str, ...] | None = None
SUBSETS = ("progan", "stargan2", "stylegan", "stylegan2", "stylegan3", "stylegan_ada")
DEFAULTS: dict[str, Any] = {
    "signal_strength": 0.045,
    "shortcut_kind": "stripes",
    "shortcut_contrast": 0.25,
    "train_subsets": ("stylegan2", "progan"),
}

SHARED_SMOOTHING = 0.4  # fraction of the skin texture every generator loses


def _artefact(
    subset: str,
    rng: np.random.Generator,
    yy: np.ndarray,
    xx: np.ndarray,
    *,
    cy: float,
    cx: float,
    rx: float,
    ry: float,
) -> np.ndarray:
    """S×S×3 artefact pattern, amplitude about 1, of one generator; the face ellipse has centre
    (cy, cx) and radii (ry, rx) in pixels (by keyword: `ellipse` takes them in the other order)."""
    size = yy.shape[0]
    p = period(size, 4.0)
    ph = rng.uniform(0, 2 * np.pi, 2)
    if subset == "progan":  # upsampling checkerboard
        pat = np.sign(np.cos(2 * np.pi * xx / p + ph[0]) * np.cos(2 * np.pi * yy / p + ph[1]))
        return np.repeat(pat[..., None], 3, axis=2)
    if subset == "stylegan2":  # fine grid lines
        q = period(size, 5.0)
        lines = ((np.mod(xx + ph[0], q) < 1.2) | (np.mod(yy + ph[1], q) < 1.2)) * 2.0 - 0.6
        return np.repeat(lines[..., None], 3, axis=2)
    if subset == "stargan2":  # blotchy colour cast
        n = np.clip(smooth_noise(rng, size, size / 16), -1.5, 1.5)
        return n[..., None] * np.array([1.2, -0.6, -0.6])
    if subset == "stylegan":  # "water droplet" blobs
        pat = np.zeros_like(xx)
        for _ in range(rng.integers(1, 3)):
            a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.7)
            pat += 2.5 * blob(
                yy,
                xx,
                cy + r * ry * np.sin(a),
                cx + r * rx * np.cos(a),
                rx * rng.uniform(0.15, 0.25),
            )
        return np.repeat(pat[..., None], 3, axis=2)
    if subset == "stylegan3":  # aliasing ripples around the face centre
        d = np.hypot(yy - cy, xx - cx)
        pat = np.sin(2 * np.pi * d / period(size, 3.5) + ph[0])
        return np.repeat(pat[..., None], 3, axis=2)
    if subset == "stylegan_ada":  # coloured high-frequency speckle
        return np.clip(rng.standard_normal(xx.shape + (3,)), -2, 2) * 0.9
    raise ValueError(f"unknown face subset {subset!r}")


def render(rng: np.random.Generator, label: int, subset: str, k: Knobs) -> Sample:
    size = k.image_size
    yy, xx = grid(size)
    bg = rng.uniform(0.2, 0.8, 3)
    img = np.ones((size, size, 3)) * bg + 0.06 * smooth_noise(rng, size, size / 8)[..., None]
    cy = size * (0.54 + rng.uniform(-0.03, 0.03))
    cx = size * (0.5 + rng.uniform(-0.04, 0.04))
    rx = size * rng.uniform(0.24, 0.28)
    ry = rx * rng.uniform(1.2, 1.32)
    hair = ellipse(yy, xx, cy - 0.25 * ry, cx, ry * 1.05, rx * 1.15)
    img = img * (1 - hair[..., None]) + hair[..., None] * (
        np.array([0.25, 0.18, 0.12]) * rng.uniform(0.3, 1.6)
    )
    face = ellipse(yy, xx, cy, cx, ry, rx)
    skin = np.array([0.85, 0.65, 0.52]) * rng.uniform(0.55, 1.1)
    shade = 1.0 - 0.12 * np.clip((xx - cx) / rx, -1, 1) * rng.uniform(-1, 1)
    smooth = (SHARED_SMOOTHING * min(1.0, k.signal_strength / 0.1)) if label == 1 else 0.0
    texture = 0.05 * (1 - smooth) * rng.standard_normal((size, size))
    face_rgb = skin * shade[..., None] * (1 + texture[..., None])
    ey, dx = cy - 0.18 * ry, 0.42 * rx
    eyes = ellipse(yy, xx, ey, cx - dx, 0.09 * ry, 0.17 * rx) + ellipse(
        yy, xx, ey, cx + dx, 0.09 * ry, 0.17 * rx
    )
    mouth = ellipse(yy, xx, cy + 0.5 * ry, cx, 0.07 * ry, 0.33 * rx)
    nose = blob(yy, xx, cy + 0.12 * ry, cx + 0.05 * rx, 0.1 * rx)
    face_rgb = face_rgb * (1 - 0.25 * nose[..., None])
    face_rgb = face_rgb * (1 - 0.85 * np.clip(eyes, 0, 1)[..., None])
    face_rgb = face_rgb * (1 - mouth[..., None]) + mouth[..., None] * np.array([0.55, 0.2, 0.2])
    if label == 1:
        inner = ellipse(yy, xx, cy, cx, ry * 0.9, rx * 0.9)[..., None]
        face_rgb = face_rgb + k.signal_strength * inner * _artefact(
            subset, rng, yy, xx, cy=cy, cx=cx, rx=rx, ry=ry
        )
    img = img * (1 - face[..., None]) + face[..., None] * face_rgb
    img += 0.015 * rng.standard_normal((size, size, 3))  # sensor noise
    features = np.clip(eyes * 1.0 + mouth * 0.8 + nose * 0.6, 0, 1)
    target = np.clip(0.45 * ellipse(yy, xx, cy, cx, ry * 0.85, rx * 0.85) + features, 0, 1)
    return Sample(image=img, target=target, keep_out=np.maximum(face, hair))
