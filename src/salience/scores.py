"""Pure score helpers (numpy only, no torch): AUROC, the ranking score of p1, the probability column,
and for K > 2 classes the one-vs-rest log-odds and their macro AUROC (issue 12 §5).

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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax probabilities in float64: N×K logits → N×K rows summing to 1."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ovr_log_odds(logits: np.ndarray) -> np.ndarray:
    """Per class k the log-odds of p_k = softmax(l)_k against the rest, l_k − logsumexp_{j≠k} l_j,
    in float64 (N×K → N×K). Monotone in p_k but never saturating, so it ranks p_k for the
    one-vs-rest AUROC. For K = 2 column 1 is exactly the margin l₁ − l₀ that ranks p1."""
    z = np.asarray(logits, dtype=np.float64)
    others = np.where(np.eye(z.shape[1], dtype=bool)[None], -np.inf, z[:, None, :])  # N×K×K
    top = others.max(axis=2)
    return z - (np.log(np.exp(others - top[:, :, None]).sum(axis=2)) + top)


def ovr_aurocs(labels: np.ndarray, logits: np.ndarray, what: str) -> list[float]:
    """One-vs-rest AUROC of each class k (rows of class k against all others, ranked by
    `ovr_log_odds`), as sklearn's `roc_auc_score(..., multi_class="ovr", average=None)` on the
    softmax probabilities (tests/test_multiclass_evaluation.py). `labels`: N class indices; `logits`:
    N×K. A class without a row makes its AUROC undefined: one-line DataError naming it."""
    labels = np.asarray(labels)
    k = np.asarray(logits).shape[1]
    missing = [str(c) for c in range(k) if not np.any(labels == c)]
    if missing:
        raise DataError(
            f"{what}: class(es) {', '.join(missing)} of {k} have no rows, so the one-vs-rest "
            "AUROC is undefined; the split needs every class"
        )
    scores = ovr_log_odds(logits)
    return [
        auroc((labels == c).astype(np.int64), scores[:, c], f"{what} [class {c}]") for c in range(k)
    ]


def val_auroc(labels: np.ndarray, logits: np.ndarray, what: str) -> tuple[float, bool]:
    """Model-selection AUROC and whether every score is equal. N×2 logits: the AUROC of p1, ranked
    by the float64 margin l₁ − l₀ (p1 in float32 saturates to 1.0 past a margin of ~17 and would
    tie). N×K logits, K > 2: the macro one-vs-rest AUROC (unweighted mean of `ovr_aurocs`, sklearn's
    `multi_class="ovr", average="macro"`; docs/decisions.md, issue 12), constant when every row has
    the same logits up to a shift."""
    if np.asarray(logits).shape[1] == 2:
        margin = logit_margin(logits)
        return auroc(labels, margin, what), constant_scores(margin)
    per_class = ovr_aurocs(labels, logits, what)
    odds = ovr_log_odds(logits)
    return float(np.mean(per_class)), len(odds) > 1 and bool(np.all(odds == odds[0]))
