"""Scores of a K-class model (issue 12 §5): one-vs-rest AUROC per class and their macro mean,
accuracy and the confusion matrix, from the test split's logits.

One-vs-rest AUROC is sklearn's `roc_auc_score(y, p, multi_class="ovr", average="macro")` on the
softmax probabilities p: per class k the binary AUROC of "class k" against all other rows, scored
by p_k, then the unweighted mean over classes (Fawcett 2006, §9; sklearn's user guide, "Multiclass
case"). As for binary tasks (`salience.evaluation.metrics`, docs/decisions.md "Evaluation"), each
class is ranked by the log-odds of p_k in float64, log p_k − log(1 − p_k) = l_k − logsumexp_{j≠k}
l_j, never by p_k itself: p_k is exactly 1.0 once the margin passes ~37 in float64 (~17 in
float32) and such rows would tie. The log-odds are monotone in p_k, so the AUROC is sklearn's
wherever p_k keeps its ranking (tests/test_multiclass_eval.py). With K = 2 the AUROC of class 1
is today's p1 AUROC, and class 0's is the same number.

`softmax` and `ovr_log_odds` live in `salience.scores` (layer 0), where training's model selection
(`val_auroc`) uses them too. Pure numpy/sklearn: no torch import.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from salience.errors import DataError
from salience.scores import auroc, ovr_log_odds, softmax

__all__ = [
    "softmax",
    "ovr_log_odds",
    "ovr_auroc",
    "accuracy",
    "confusion",
    "multiclass_metrics",
    "subset_groups",
    "kclass_test_metrics",
]


def _checked(
    labels: np.ndarray, logits: np.ndarray, classes: Sequence[str], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """(labels as int64, logits as float64), or a one-line DataError naming `what`."""
    y = np.asarray(labels)
    z = np.asarray(logits, dtype=np.float64)
    k = len(classes)
    if k < 2 or z.ndim != 2 or z.shape != (len(y), k) or y.ndim != 1:
        raise DataError(
            f"{what}: {len(y)} labels and logits of shape {z.shape} do not fit the {k} classes "
            f"{list(classes)}; the model's head must have one output per class of meta.json"
        )
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k):
        raise DataError(
            f"{what}: labels must be class indices 0…{k - 1} ({', '.join(classes)}), "
            f"got {sorted(set(y.tolist()))[:5]}"
        )
    if not np.all(np.isfinite(z)):
        raise DataError(
            f"{what}: logits contain NaN/inf; the model diverged — retrain with a lower train.lr"
        )
    return y.astype(np.int64), z


def ovr_auroc(
    labels: np.ndarray, logits: np.ndarray, classes: Sequence[str], what: str
) -> dict[str, float]:
    """One-vs-rest AUROC per class name, ranked by `ovr_log_odds`. `labels`: N class indices into
    `classes` (K names, the order of the logits' columns); `logits`: N×K. A class without a row in
    the split (its AUROC is undefined; sklearn raises too) is a one-line DataError naming it."""
    from sklearn.metrics import roc_auc_score

    y, z = _checked(labels, logits, classes, what)
    missing = [f"{c!r}" for i, c in enumerate(classes) if not np.any(y == i)]
    if missing:
        which = (
            f"class {missing[0]} has" if len(missing) == 1 else f"classes {', '.join(missing)} have"
        )
        raise DataError(
            f"{what}: {which} no rows, so the one-vs-rest AUROC is undefined; "
            f"the split needs every class of {list(classes)}"
        )
    scores = ovr_log_odds(z)
    return {c: float(roc_auc_score(y == i, scores[:, i])) for i, c in enumerate(classes)}


def accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Fraction of rows whose argmax class (ties → the lowest index) is the label (sklearn)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, np.argmax(logits, axis=1)))


def confusion(labels: np.ndarray, logits: np.ndarray, k: int) -> np.ndarray:
    """K×K counts, row = true class, column = predicted (argmax) class (sklearn), every class kept
    even when it never occurs."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, np.argmax(logits, axis=1), labels=list(range(k)))


def multiclass_metrics(
    labels: np.ndarray, logits: np.ndarray, classes: Sequence[str], what: str
) -> dict:
    """The metrics.json block of a K-class run: `classes` (in head order), `auroc_ovr` (per class),
    `auroc_macro` (their unweighted mean), `accuracy`, `confusion` (K×K list, rows = true) and `n`
    (rows per class). Errors as `ovr_auroc`."""
    per_class = ovr_auroc(labels, logits, classes, what)
    y, z = _checked(labels, logits, classes, what)
    return {
        "classes": list(classes),
        "auroc_ovr": per_class,
        "auroc_macro": float(np.mean(list(per_class.values()))),
        "accuracy": accuracy(y, z),
        "confusion": confusion(y, z, len(classes)).tolist(),
        "n": {c: int(np.sum(y == i)) for i, c in enumerate(classes)},
    }


def subset_groups(labels: np.ndarray, subsets: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks of the AUROC groups: "all", and per subset s (an attack type, a finding) the rows
    of s with every row of the classes that hold no row of s. For K = 2 this is the binary rule of
    `metrics.subset_metrics` (all label-0 rows against the label-1 rows of s, DD Tables 3–4)."""
    groups = {"all": np.ones(len(labels), dtype=bool)}
    named = sorted({s for s in subsets if isinstance(s, str) and s})
    for s in named:
        in_s = subsets == s
        groups[s] = in_s | ~np.isin(labels, np.unique(labels[in_s]))
    return groups


def _macro(labels: np.ndarray, scores: np.ndarray, k: int, what: str) -> float:
    """Macro one-vs-rest AUROC of N×K ranking scores (column k ranks class k)."""
    return float(
        np.mean([auroc((labels == c).astype(np.int64), scores[:, c], what) for c in range(k)])
    )


def kclass_test_metrics(scores: pd.DataFrame, classes: Sequence[str], what: str) -> dict:
    """The metrics.json core of a K-class run (K > 2) from scores.csv's frame (label, subset,
    logit0…logit{K−1}): `auroc` {"all": macro one-vs-rest AUROC ranked by the log-odds of p_k, and
    per subset (`subset_groups`) whose group holds every class}, `auroc_sigmoid` (the same, ranked
    by σ(l_k), CVRL's per-output sigmoid), `n` {group: {"neg": rows of class 0, "pos": the other
    rows, "classes": rows per class}}, `auroc_per_class`, `accuracy`, `confusion` (rows = true),
    `classes` and `constant_scores`. Errors: one-line DataError (a class without test rows, NaN)."""
    k = len(classes)
    z = scores[[f"logit{c}" for c in range(k)]].to_numpy(dtype=np.float64)
    y, z = _checked(scores["label"].to_numpy(), z, classes, what)
    whole = multiclass_metrics(y, z, classes, what)
    odds = ovr_log_odds(z)
    out: dict = {"auroc": {}, "auroc_sigmoid": {}, "n": {}}
    subsets = scores["subset"].to_numpy(dtype=object)
    for name, mask in subset_groups(y, subsets).items():
        lab = y[mask]
        if len(np.unique(lab)) < k:
            continue  # a class without rows in the group: its one-vs-rest AUROC is undefined
        out["auroc"][name] = _macro(lab, odds[mask], k, f"{what} [{name}]")
        out["auroc_sigmoid"][name] = _macro(lab, z[mask], k, f"{what} [{name}]")
        counts = {c: int(np.sum(lab == i)) for i, c in enumerate(classes)}
        out["n"][name] = {"neg": counts[classes[0]], "pos": int(len(lab)) - counts[classes[0]]}
        out["n"][name]["classes"] = counts
    out.update(
        classes=whole["classes"],
        auroc_per_class=whole["auroc_ovr"],
        accuracy=whole["accuracy"],
        confusion=whole["confusion"],
        constant_scores=len(odds) > 1 and bool(np.all(odds == odds[0])),
    )
    if out["constant_scores"]:
        out["warnings"] = [
            f"{what}: every image has the same scores; the model ranks nothing and its macro "
            "AUROC of 0.5 comes from ties (tables mark the cell)"
        ]
    return out
