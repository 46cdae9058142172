"""Pure score helpers (numpy only, no torch): AUROC, the ranking score of p1, the probability column.

Torch-free so that training (model selection) and evaluation (test metrics) share one definition
without training importing evaluation (imports run one way; tests/test_architecture.py holds the
layer map).

p1 = σ(l₁ − l₀) in float32 is exactly 1.0 once the margin passes ~17, and every such image would
tie, so AUROCs rank by the float64 log-odds (`logit_margin`), never by the probability (issue 13 §6).
"""

from __future__ import annotations

import numpy as np

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


def logit_margin(logits: np.ndarray) -> np.ndarray:
    """Ranking score of p1 = softmax(l)₁: its log-odds l₁ − l₀ in float64 (N×2 logits → N)."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, 1] - logits[:, 0]


def constant_scores(scores: np.ndarray) -> bool:
    """True when every row has the same score: the model ranks nothing (AUROC 0.5 by ties),
    e.g. an untrained EfficientNet-b7 whose BatchNorm statistics make eval outputs constant."""
    scores = np.asarray(scores, dtype=np.float64)
    return len(scores) > 1 and bool(np.all(scores == scores[0]))


def softmax_p1(logits: np.ndarray) -> np.ndarray:
    """p1 = softmax(l)[1] = σ(l1 − l0): the probability column of scores.csv. Never ranked
    (it saturates to 1.0 in float32): AUROCs rank by `logit_margin`."""
    return 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))


def val_auroc(labels: np.ndarray, logits: np.ndarray, what: str) -> tuple[float, bool]:
    """Model-selection AUROC of p1 from N×2 logits, ranked by the float64 margin l₁ − l₀ (p1 in
    float32 saturates to 1.0 past a margin of ~17 and would tie), and whether every score is equal."""
    margin = logit_margin(logits)
    return auroc(labels, margin, what), constant_scores(margin)
