"""AUROC overall and per subset, from p1 (softmax) and from σ(logit₁) (CVRL test scripts).

Per subset s (a held-out attack type, a generator): all label-0 test rows (the shared bona fide /
real images) against the label-1 rows of s, as in DD Tables 3–4 and CYBORG's per-GAN test sets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salience.config import reserved_name
from salience.errors import DataError


def auroc(labels: np.ndarray, scores: np.ndarray, what: str) -> float:
    """AUROC as the Mann–Whitney statistic with average ranks for ties: equal to sklearn's
    roc_auc_score (tested), without sklearn's ~1 s import in every training job."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"{what}: only one class present, AUROC is undefined; the split needs both labels"
        )
    if not np.all(np.isfinite(scores)):
        raise DataError(
            f"{what}: scores contain NaN/inf; the model diverged — retrain with a lower train.lr"
        )
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average rank of each tie group (1-based)
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def subset_metrics(scores: pd.DataFrame, what: str) -> dict:
    """`scores` has columns label, subset, p1, p_sigmoid1. Returns the metrics.json core."""
    out: dict = {"auroc": {}, "auroc_sigmoid": {}, "n": {}}
    labels = scores["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"{what}: test split has a single class; AUROC is undefined — the manifest needs both labels in test"
        )
    for s in scores["subset"].unique():
        why = reserved_name(s) if isinstance(s, str) and s else None
        if why:  # the subset would overwrite the overall AUROC (issue 10.2)
            raise DataError(f"{what}: subset {why}; rename the subset and prepare again")
    groups = {"all": np.ones(len(scores), dtype=bool)}
    neg = labels == 0
    for s in sorted(
        x for x in scores.loc[labels == 1, "subset"].unique() if isinstance(x, str) and x
    ):
        groups[s] = neg | ((labels == 1) & (scores["subset"].to_numpy() == s))
    for name, mask in groups.items():
        sub = scores[mask]
        lab = sub["label"].to_numpy()
        if len(np.unique(lab)) < 2:
            continue
        out["auroc"][name] = auroc(lab, sub["p1"].to_numpy(), f"{what} [{name}]")
        out["auroc_sigmoid"][name] = auroc(lab, sub["p_sigmoid1"].to_numpy(), f"{what} [{name}]")
        out["n"][name] = {"pos": int((lab == 1).sum()), "neg": int((lab == 0).sum())}
    return out


def pearson_agreement(cam: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Per-image Pearson correlation between two B×H×W maps; NaN where either map is constant."""
    a = cam.reshape(len(cam), -1).astype(np.float64)
    b = human.reshape(len(human), -1).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(1) / den
    r[den == 0] = np.nan
    return r
