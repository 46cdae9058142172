"""AUROC overall and per subset, of p1 (softmax) and of σ(logit₁) (CVRL test scripts).

Both are ranked by their log-odds in float64, never by the probability: p1 = σ(l₁ − l₀) in float32
is exactly 1.0 once the margin passes ~17, and every such image would tie (issue 13 §6). σ is
monotone, so the AUROC of the margin l₁ − l₀ *is* the AUROC of p1 wherever p1 keeps its ranking,
and that of l₁ is the AUROC of σ(l₁).

Per subset s (a held-out attack type, a generator): all label-0 test rows (the shared bona fide /
real images) against the label-1 rows of s, as in DD Tables 3–4 and CYBORG's per-GAN test sets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salience.config import reserved_name
from salience.errors import DataError
from salience.scores import auroc, constant_scores, logit_margin


def subset_metrics(scores: pd.DataFrame, what: str) -> dict:
    """`scores` has columns label, subset, logit0, logit1 (N rows). Returns the metrics.json core:
    auroc (ranked by l₁ − l₀, i.e. by p1), auroc_sigmoid (ranked by l₁, i.e. by σ(l₁)) and n per
    subset, and `constant_scores` (with a `warnings` entry) when every row has the same margin."""
    out: dict = {"auroc": {}, "auroc_sigmoid": {}, "n": {}}
    margin = logit_margin(scores[["logit0", "logit1"]].to_numpy())
    logit1 = scores["logit1"].to_numpy(dtype=np.float64)
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
        out["auroc"][name] = auroc(lab, margin[mask], f"{what} [{name}]")
        out["auroc_sigmoid"][name] = auroc(lab, logit1[mask], f"{what} [{name}]")
        out["n"][name] = {"pos": int((lab == 1).sum()), "neg": int((lab == 0).sum())}
    out["constant_scores"] = constant_scores(margin)
    if out["constant_scores"]:
        out["warnings"] = [
            f"{what}: every image has the same score (logit margin {margin[0]:g}); the model ranks "
            "nothing and its AUROC of 0.5 comes from ties (tables mark the cell)"
        ]
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
