"""K-class scores (issue 12 §5) against sklearn directly: one-vs-rest AUROC per class and macro,
accuracy, confusion matrix; the K = 2 case equals today's p1 AUROC; bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

from salience.errors import DataError
from salience.evaluation import metrics
from salience.evaluation import multiclass as mce

CLASSES = ["normal", "chf", "pneumonia"]


def sample(n: int, k: int, seed: int, scale: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) * scale
    logits[np.arange(n), y] += 1.0  # informative, not perfect
    return y, logits


def sk_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("k", "seed"), [(3, 0), (4, 1), (5, 2)])
def test_ovr_auroc_accuracy_confusion_equal_sklearn(k: int, seed: int) -> None:
    y, z = sample(300, k, seed)
    classes = [f"c{i}" for i in range(k)]
    m = mce.multiclass_metrics(y, z, classes, "test")
    p = sk_softmax(z)
    assert np.allclose(mce.softmax(z), p, rtol=0, atol=1e-15)
    sk_macro = roc_auc_score(y, p, multi_class="ovr", average="macro")
    sk_each = roc_auc_score(y, p, multi_class="ovr", average=None)
    assert m["auroc_macro"] == pytest.approx(sk_macro, abs=1e-15)
    assert list(m["auroc_ovr"].values()) == pytest.approx(list(sk_each), abs=1e-15)
    assert 0.6 < m["auroc_macro"] < 0.99  # informative but not perfect: the test can tell
    assert m["accuracy"] == accuracy_score(y, p.argmax(axis=1))
    assert m["confusion"] == confusion_matrix(y, p.argmax(axis=1)).tolist()
    assert m["n"] == {c: int((y == i).sum()) for i, c in enumerate(classes)}
    assert m["classes"] == classes


def test_saturated_probabilities_still_rank_by_log_odds() -> None:
    # margins of 40–80 make p_k exactly 1.0 in float64: sklearn on probabilities ties those rows,
    # the log-odds keep their order (the binary rule of docs/decisions.md "Evaluation")
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    z = np.zeros((8, 3))
    z[:, 0] = [80.0, 70.0, 60.0, 40.0, 1.0, 50.0, 2.0, 3.0]
    p = mce.softmax(z)
    assert (p[:, 0] == 1.0).sum() >= 4
    got = mce.ovr_auroc(y, z, CLASSES, "test")["normal"]
    assert got == roc_auc_score(y == 0, z[:, 0])  # exact ranking by the class-0 logit
    assert got == 1.0 and roc_auc_score(y == 0, p[:, 0]) == 0.8  # ties lose the order


def test_k2_equals_the_binary_p1_auroc() -> None:
    y, z = sample(200, 2, 5)
    per = mce.ovr_auroc(y, z, ["bonafide", "attack"], "test")
    binary = metrics.auroc(y, metrics.logit_margin(z), "test")
    assert per["attack"] == pytest.approx(binary, abs=1e-15)
    assert per["bonafide"] == pytest.approx(binary, abs=1e-15)
    assert np.array_equal(mce.ovr_log_odds(z)[:, 1], metrics.logit_margin(z))


def test_confusion_keeps_a_never_predicted_class_and_argmax_ties_go_low() -> None:
    y = np.array([0, 1, 2, 2])
    z = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 0.0], [5.0, 0.0, 0.0]])
    assert mce.confusion(y, z, 3).tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert mce.accuracy(y, z) == 0.5


@pytest.mark.parametrize(
    ("labels", "logits", "message"),
    [
        (
            [0, 1, 0, 1],
            np.eye(4, 3),
            r"^test: class 'pneumonia' has no rows, so the one-vs-rest AUROC is undefined; "
            r"the split needs every class of \['normal', 'chf', 'pneumonia'\]$",
        ),
        ([0, 0, 0, 0], np.eye(4, 3), r"classes 'chf', 'pneumonia' have no rows"),
        (
            [0, 1, 2, 3],
            np.eye(4, 3),
            r"labels must be class indices 0…2 \(normal, chf, pneumonia\)",
        ),
        ([0, 1, 2, 0], np.eye(4, 2), r"logits of shape \(4, 2\) do not fit the 3 classes"),
        ([0, 1, 2, 0], np.where(np.eye(4, 3) > 0, np.nan, 0.0), "logits contain NaN/inf"),
    ],
)
def test_bad_input_is_one_line_data_error(labels, logits, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        mce.multiclass_metrics(np.array(labels), logits, CLASSES, "test")
    assert "\n" not in str(err.value)


def test_docs_quote_the_messages() -> None:
    """docs/robustness.md ("Multi-class scores and terms") quotes these messages verbatim."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    cases = [
        ([0, 1, 0, 1], np.eye(4, 3)),
        ([0, 1, 2, 3], np.eye(4, 3)),
        ([0, 1, 2, 0], np.eye(4, 2)),
        ([0, 1, 2, 0], np.where(np.eye(4, 3) > 0, np.nan, 0.0)),
    ]
    for labels, logits in cases:
        with pytest.raises(DataError) as err:
            mce.multiclass_metrics(np.array(labels), logits, CLASSES, "test")
        assert f"`` {err.value} ``" in doc
