"""Saliency-benchmark metrics of a model map against the human map: CC, SIM, KL and NSS.

Definitions as in Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics
tell us about saliency models?", IEEE TPAMI 41(3), 2019 (§3.2, the MIT/Tübingen benchmark code),
with P the model map and Q the human map, both B×H×W on the same grid:

- CC  = Pearson's r between P and Q (symmetric; 1 = same up to an affine map).
- SIM = Σᵢ min(Pᵢ/ΣP, Qᵢ/ΣQ), the histogram intersection of the two maps as distributions
  (1 = identical, 0 = disjoint).
- KL  = Σᵢ Q̂ᵢ · log(ε + Q̂ᵢ / (P̂ᵢ + ε)) with P̂, Q̂ the maps divided by their sums and ε = 2.2204e-16
  (the benchmark's regularisation; pysaliency's `MIT_KLDiv`). Lower is better; the human map is
  the reference distribution.
- NSS = the mean of the standardised model map (zero mean, unit std over the image) at the
  fixation cells. Human maps here are continuous, so the fixation set is the human map's top
  region (`top_fraction_fixations`; docs/decisions.md, `rq1.nss_top`).

pysaliency (the maintained implementation) is not a dependency: it ships as a Cython sdist and
pulls numba. These functions are pinned to independent scipy computations in tests/test_rq1.py.
Undefined values (a constant map for CC/NSS, an all-zero map for SIM/KL, no fixation cell) are
NaN per image; callers count and leave them out, never average them in.
"""

from __future__ import annotations

import math

import numpy as np

from salience.evaluation.metrics import pearson_agreement

__all__ = ["KL_EPS", "cc", "sim", "kl", "nss", "top_fraction_fixations", "METRICS"]

KL_EPS = 2.2204e-16  # MATLAB's eps, as the MIT saliency benchmark's KLdiv.m
METRICS = ("cc", "sim", "kl", "nss")


def _flat(maps: np.ndarray) -> np.ndarray:
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"saliency metrics: expected B×H×W maps, got shape {a.shape}")
    return a.reshape(len(a), -1)


def _check_pair(p: np.ndarray, q: np.ndarray) -> None:
    if p.shape != q.shape:
        raise ValueError(f"saliency metrics: map shapes differ, {p.shape} vs {q.shape}")


def _density(a: np.ndarray) -> np.ndarray:
    """Rows divided by their sums (a non-negative map as a distribution); NaN rows where the sum is 0."""
    if (a < 0).any():
        raise ValueError("SIM/KL need non-negative maps (min-max them first)")
    s = a.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = a / s
    d[(s == 0).ravel()] = np.nan
    return d


def cc(pred: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Pearson's linear correlation coefficient per image (B,); NaN where either map is constant."""
    p, q = _flat(pred), _flat(human)
    _check_pair(p, q)
    return pearson_agreement(p, q)  # the training job's cam_agreement: one definition of CC


def sim(pred: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Similarity (histogram intersection) per image (B,), in [0, 1]; NaN where a map sums to 0."""
    p, q = _flat(pred), _flat(human)
    _check_pair(p, q)
    return np.minimum(_density(p), _density(q)).sum(1)


def kl(pred: np.ndarray, human: np.ndarray) -> np.ndarray:
    """KL(human ‖ pred) per image (B,) with the benchmark's ε regularisation, in nats (≥ 0 up to
    ε); NaN where a map sums to 0."""
    p, q = _flat(pred), _flat(human)
    _check_pair(p, q)
    p, q = _density(p), _density(q)
    return (q * np.log(KL_EPS + q / (p + KL_EPS))).sum(1)


def nss(pred: np.ndarray, fixations: np.ndarray) -> np.ndarray:
    """Normalised scanpath saliency per image (B,): mean of (P − mean P) / std P (population std)
    over the cells where `fixations` (B×H×W bool) is true; NaN for a constant P or no fixation."""
    p = _flat(pred)
    f = np.asarray(fixations, dtype=bool).reshape(p.shape[0], -1)
    _check_pair(p, f)
    std = p.std(1)
    n = f.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (p - p.mean(1, keepdims=True)) / std[:, None]
        out = (z * f).sum(1) / n
    out[(std == 0) | (n == 0)] = np.nan
    return out


def top_fraction_fixations(human: np.ndarray, fraction: float) -> np.ndarray:
    """Fixation cells of continuous human maps (B×H×W → bool B×H×W): every cell whose value is at
    least the k-th largest value of its map, k = ceil(fraction · H·W) (ties are all kept, so a
    binary region map gives its whole region). A constant map has no top region: no fixations."""
    if not 0 < fraction <= 1:
        raise ValueError(f"top_fraction_fixations: fraction must be in (0, 1], got {fraction}")
    q = _flat(human)
    k = max(1, math.ceil(fraction * q.shape[1]))
    kth = -np.partition(-q, k - 1, axis=1)[:, k - 1]
    mask = q >= kth[:, None]
    mask[q.max(1) == q.min(1)] = False
    return mask.reshape(np.shape(human))
