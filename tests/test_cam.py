"""salience.cam and salience.losses.cam_terms against their equations, computed by hand.

The references below are plain Python loops over (b, i, j) with the textbook definitions
(docs/methods.md; docs/reference-implementations.md §3): norm = per-sample min-max, MSE = mean over B×H×W.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import salience  # noqa: F401
from salience.cam import class_activation_maps, difference_salience, minmax, true_false_cams
from salience.errors import ConfigError
from salience.losses import cam_terms
from salience.models.base import Backbone, Classifier

ROBUSTNESS = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"

torch.set_num_threads(1)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cam_loop(feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    b_, c_, h_, w_ = feat.shape
    out = torch.zeros(b_, weight.shape[0], h_, w_, dtype=feat.dtype)
    for b in range(b_):
        for k in range(weight.shape[0]):
            for i in range(h_):
                for j in range(w_):
                    out[b, k, i, j] = sum(weight[k, c] * feat[b, c, i, j] for c in range(c_))
    return out


def _norm_loop(m: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max of B×H×W maps (no eps: only used on non-constant maps)."""
    out = torch.zeros_like(m)
    for b in range(m.shape[0]):
        lo, hi = float(m[b].min()), float(m[b].max())
        for i in range(m.shape[1]):
            for j in range(m.shape[2]):
                out[b, i, j] = (float(m[b, i, j]) - lo) / (hi - lo)
    return out


def _mse_loop(a: torch.Tensor, b: torch.Tensor) -> float:
    vals = [(float(x) - float(y)) ** 2 for x, y in zip(a.flatten(), b.flatten())]
    return sum(vals) / len(vals)


# --------------------------------------------------------------------------------------- cam.py
def test_cams_by_hand_numbers():
    feat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])  # 1×2×2×2
    weight = torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    cams = class_activation_maps(feat, weight)
    assert cams.shape == (1, 2, 2, 2)
    expected = torch.tensor([[[[1.0, 2.5], [2.5, 5.0]], [[-2.0, -3.0], [-7.0, -6.0]]]])
    torch.testing.assert_close(cams, expected)


def test_cams_match_loop_and_gap_identity():
    feat, weight, bias = _rand(2, 3, 2, 3), _rand(4, 3, seed=1), _rand(4, seed=2)
    cams = class_activation_maps(feat, weight)
    assert cams.shape == (2, 4, 2, 3)
    torch.testing.assert_close(cams, _cam_loop(feat, weight))
    logits = feat.mean(dim=(2, 3)) @ weight.T + bias
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + bias, logits)


def test_cams_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        class_activation_maps(torch.zeros(1, 3, 2, 2), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        class_activation_maps(torch.zeros(3, 2, 2), torch.zeros(2, 3))


def test_minmax_by_hand():
    m = torch.tensor([[[1.0, 2.0], [3.0, 5.0]], [[-1.0, 1.0], [0.0, 0.0]]])
    expected = torch.tensor([[[0.0, 0.25], [0.5, 1.0]], [[0.0, 1.0], [0.5, 0.5]]])
    torch.testing.assert_close(minmax(m), expected)  # each map on its own range
    x = _rand(2, 3, 4, 5)  # any leading dims: per map over the last two
    torch.testing.assert_close(minmax(x).flatten(0, 1), _norm_loop(x.flatten(0, 1)))


def test_minmax_constant_map_is_zero_with_finite_gradient():
    m = torch.full((2, 3, 3), 3.0, requires_grad=True)
    out = minmax(m)
    assert torch.equal(out, torch.zeros(2, 3, 3))
    ((out - 0.5) ** 2).sum().backward()
    assert torch.isfinite(m.grad).all()


def test_true_false_cams():
    cams = torch.arange(8.0).view(
        2, 2, 1, 2
    )  # sample 0: cam0=[0,1], cam1=[2,3]; sample 1: [4,5],[6,7]
    t, f = true_false_cams(cams, torch.tensor([0, 1]))
    torch.testing.assert_close(t, torch.tensor([[[0.0, 1.0]], [[6.0, 7.0]]]))
    torch.testing.assert_close(f, torch.tensor([[[2.0, 3.0]], [[4.0, 5.0]]]))
    t, f = true_false_cams(cams, torch.tensor([1, 0]))
    torch.testing.assert_close(t, torch.tensor([[[2.0, 3.0]], [[4.0, 5.0]]]))


def test_difference_salience_by_loop():
    feat, weight = _rand(2, 3, 3, 3), _rand(2, 3, seed=1)
    labels = torch.tensor([1, 0])
    cams = _cam_loop(feat, weight)
    diff = torch.stack([cams[b, y] - cams[b, 1 - y] for b, y in enumerate(labels.tolist())])
    torch.testing.assert_close(difference_salience(feat, weight, labels), _norm_loop(diff))
    # t − f is the logit-difference map (DD §3): GAP(t − f) = (l_y − b_y) − (l_{1−y} − b_{1−y})
    emb = feat.mean(dim=(2, 3))
    ldiff = [float(emb[b] @ (weight[y] - weight[1 - y])) for b, y in enumerate(labels.tolist())]
    torch.testing.assert_close(diff.mean(dim=(1, 2)), torch.tensor(ldiff, dtype=diff.dtype))


def test_binary_cam_helpers_refuse_k_classes():
    """3-class CAMs: labels with a 2 used to raise a raw IndexError, labels only 0/1 silently
    compared classes 0 and 1; both now refuse in one line naming the K-class functions."""
    cams = _rand(2, 3, 2, 2)
    feat, weight = _rand(2, 4, 2, 2), _rand(3, 4, seed=1)
    for labels in (torch.tensor([0, 2]), torch.tensor([0, 1])):
        with pytest.raises(ValueError, match=r"got 3 classes.*salience\.losses\.multiclass") as e:
            true_false_cams(cams, labels)
        assert "\n" not in str(e.value) and "true_cam" in str(e.value)
        with pytest.raises(ValueError, match=r"difference_salience .*got 3 classes") as e:
            difference_salience(feat, weight, labels)
        assert "\n" not in str(e.value) and "false_class_cams" in str(e.value)
        assert f"`` {e.value} ``" in ROBUSTNESS.read_text()  # quoted verbatim


@pytest.mark.parametrize("k", [1, 0])
def test_classifier_needs_two_classes(k):
    class Tiny(Backbone):
        num_features = 3

    with pytest.raises(ConfigError, match=rf"num_classes {k}: a classifier needs at least 2") as e:
        Classifier(Tiny(), num_classes=k)
    assert "\n" not in str(e.value)
    if k == 1:
        assert f"`` {e.value} ``" in ROBUSTNESS.read_text()
    assert Classifier(Tiny(), num_classes=3).fc.out_features == 3


# ---------------------------------------------------------------------------------- cam_terms
def test_cyborg_term_by_numbers():
    t = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])  # norm: [[0, .25], [.5, 1]]
    h = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    # squared errors 0, .0625, .25, 0 → mean .078125
    assert float(cam_terms.cyborg(t, torch.zeros_like(t), h)) == pytest.approx(0.078125)


@pytest.fixture
def tfh():
    t, f = _rand(3, 4, 4, seed=3), _rand(3, 4, 4, seed=4)
    h = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return t, f, h


def test_cyborg_term(tfh):
    t, f, h = tfh
    assert float(cam_terms.cyborg(t, f, h)) == pytest.approx(_mse_loop(_norm_loop(t), h))


def test_difference_term(tfh):
    t, f, h = tfh
    assert float(cam_terms.difference(t, f, h)) == pytest.approx(_mse_loop(_norm_loop(t - f), h))


def test_perclass_term(tfh):
    t, f, h = tfh
    a, b = cam_terms.perclass(t, f, h)
    assert float(a) == pytest.approx(_mse_loop(_norm_loop(t), h))
    assert float(b) == pytest.approx(_mse_loop(_norm_loop(f), 1.0 - h))


def test_contrast_term(tfh):
    t, f, h = tfh
    a, b = cam_terms.contrast(t, f, h)
    nt = _norm_loop(t)
    assert float(a) == pytest.approx(_mse_loop(nt, h))
    assert float(b) == pytest.approx(_mse_loop(_norm_loop(f), 1.0 - nt))


@pytest.mark.parametrize("name", ["cyborg", "difference", "perclass", "contrast"])
@pytest.mark.parametrize("f_constant", [True, False])
def test_constant_cams_give_finite_values_and_gradients(name, f_constant):
    t = torch.full((2, 3, 3), 0.7, requires_grad=True)
    f = (torch.full((2, 3, 3), 0.7) if f_constant else _rand(2, 3, 3).float()).requires_grad_()
    h = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(6))
    out = getattr(cam_terms, name)(t, f, h)
    parts = out if isinstance(out, tuple) else (out,)
    total = sum(parts)
    assert all(torch.isfinite(p) for p in parts)
    total.backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert f.grad is None if name == "cyborg" else torch.isfinite(f.grad).all()  # cyborg ignores f


# ---------------------------------------------------------------------------- passive fooling
def test_border_target_7x7():
    m = cam_terms.border_target(7, 7)
    assert m.shape == (7, 7) and int(m.sum()) == 24
    assert torch.equal(m[1:6, 1:6], torch.zeros(5, 5))
    assert m[0].all() and m[-1].all() and m[:, 0].all() and m[:, -1].all()


def test_border_target_14x14_has_a_two_cell_frame():
    m = cam_terms.border_target(14, 14)
    assert int(m.sum()) == 14 * 14 - 10 * 10
    assert torch.equal(m[2:12, 2:12], torch.zeros(10, 10))
    assert m[:2].all() and m[-2:].all() and m[:, :2].all() and m[:, -2:].all()


def test_border_target_small_and_like():
    assert torch.equal(cam_terms.border_target(2, 2), torch.ones(2, 2))  # no room for a centre
    like = torch.zeros(1, dtype=torch.float64)
    assert cam_terms.border_target(7, 7, like=like).dtype == torch.float64
