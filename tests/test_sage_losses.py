"""SAGE's pure functions (salience.losses.sage) against their equations on hand-built tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import salience  # noqa: F401  (torchvision shim before torchvision)
from salience.losses.sage import (
    blur_views,
    composite,
    cosine_distance,
    gaussian_blur,
    js_divergence,
    triplet,
)

torch.set_num_threads(1)


def numpy_blur(x: np.ndarray, sigma: float, k: int) -> np.ndarray:
    """Reference: separable Gaussian (weights ∝ exp(−i²/2σ²), normalised), reflect padding."""
    r = k // 2
    w = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    w /= w.sum()
    p = np.pad(x, [(0, 0), (0, 0), (r, r), (r, r)], mode="reflect")
    h, wd = x.shape[-2:]
    rows = sum(w[i] * p[:, :, i : i + h, :] for i in range(k))
    return sum(w[j] * rows[:, :, :, j : j + wd] for j in range(k))


@pytest.fixture
def xh():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 10, generator=g, dtype=torch.float64)
    h = torch.rand(2, 12, 10, generator=g, dtype=torch.float64)
    return x, h


@pytest.mark.parametrize("sigma", [1.5, 10.0])
def test_blur_matches_numpy_gaussian(xh, sigma):
    x, _ = xh
    ref = numpy_blur(x.numpy(), sigma, 7)
    np.testing.assert_allclose(gaussian_blur(x, sigma, 7).numpy(), ref, atol=1e-10)


@pytest.mark.parametrize(
    ("sigma", "k", "size"), [(10.0, 7, 12), (2.0, 13, 48), (16.0, 95, 48), (0.8, 3, 5)]
)
def test_blur_equals_torchvision(sigma, k, size):
    """The separable blur gives torchvision's numbers (its 2-D kernel), Boyd's largest kernel included."""
    import torchvision.transforms.v2.functional as TF

    x = torch.randn(3, 3, size, size + 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        gaussian_blur(x, sigma, k),
        TF.gaussian_blur(x, [k, k], [sigma, sigma]),
        atol=2e-6,
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("sigma", "k", "msg"),
    [(1.0, 4, "odd and positive"), (0.0, 7, "sigma > 0"), (5.0, 31, "larger than 15 px")],
)
def test_blur_rejects_bad_kernels(sigma, k, msg):
    with pytest.raises(ValueError, match=msg):
        gaussian_blur(torch.zeros(1, 3, 12, 12), sigma, k)


def test_blur_views_equations(xh):
    x, h = xh
    g = torch.from_numpy(numpy_blur(x.numpy(), 10.0, 7))
    xb, keep, degrade = blur_views(x, h, sigma=10.0, kernel_size=7)
    h4 = h.unsqueeze(1)
    torch.testing.assert_close(xb, g)
    torch.testing.assert_close(keep, h4 * x + (1 - h4) * g)
    torch.testing.assert_close(degrade, (1 - h4) * x + h4 * g)
    # one pixel by hand: x̃ = h·x + (1−h)·G(x)
    b, c, i, j = 1, 2, 5, 7
    hv = float(h[b, i, j])
    assert float(keep[b, c, i, j]) == pytest.approx(
        hv * float(x[b, c, i, j]) + (1 - hv) * float(g[b, c, i, j])
    )


def test_blur_views_accepts_b1hw_and_extreme_maps(xh):
    x, h = xh
    a = blur_views(x, h, 5.0)
    b = blur_views(x, h.unsqueeze(1), 5.0)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)
    ones, zeros = torch.ones_like(h), torch.zeros_like(h)
    g, keep, degrade = blur_views(x, ones, 5.0)
    torch.testing.assert_close(keep, x)
    torch.testing.assert_close(degrade, g)
    g, keep, degrade = blur_views(x, zeros, 5.0)
    torch.testing.assert_close(keep, g)
    torch.testing.assert_close(degrade, x)


def test_blur_commutes_with_normalisation(xh):
    # Why blurring the ImageNet-normalised tensor is fine: G(a·x + b) = a·G(x) + b per channel.
    x, _ = xh
    a = torch.tensor([2.0, 0.5, 4.0], dtype=x.dtype).view(1, 3, 1, 1)
    b = torch.tensor([-1.0, 0.3, 2.0], dtype=x.dtype).view(1, 3, 1, 1)
    torch.testing.assert_close(gaussian_blur(a * x + b, 10.0), a * gaussian_blur(x, 10.0) + b)


def test_blur_views_rejects_wrong_map_size(xh):
    x, h = xh
    with pytest.raises(ValueError, match="does not match"):
        blur_views(x, h[:, :6], 5.0)


def test_composite_is_keep_view(xh):
    x, h = xh
    g = gaussian_blur(x, 3.0)
    torch.testing.assert_close(composite(x, h, g), blur_views(x, h, 3.0)[1])


# ------------------------------------------------------------------------------------------- JS
def js_numpy(p_logits, q_logits, tau):
    def softmax(v):
        e = np.exp(v / tau - np.max(v / tau, axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(np.asarray(p_logits, float)), softmax(np.asarray(q_logits, float))
    m = (p + q) / 2
    kl = lambda a, b: (a * np.log(a / b)).sum(axis=1)  # noqa: E731
    return float(np.mean(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def test_js_explicit_numbers():
    # τ = 1: P = softmax([0, ln 3]) = (1/4, 3/4), Q = (1/2, 1/2), M = (3/8, 5/8)
    p = torch.tensor([[0.0, math.log(3.0)]])
    q = torch.tensor([[0.0, 0.0]])
    expected = 0.5 * (0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.625)) + 0.5 * (
        0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.625)
    )
    assert float(js_divergence(p, q, tau=1.0)) == pytest.approx(expected, rel=1e-5)
    # τ = 2 halves the logits before the softmax
    assert float(js_divergence(p, q, tau=2.0)) == pytest.approx(js_numpy(p, q, 2.0), rel=1e-5)


def test_js_batch_mean_symmetric_bounded():
    g = torch.Generator().manual_seed(1)
    p, q = torch.randn(5, 2, generator=g) * 3, torch.randn(5, 2, generator=g) * 3
    for tau in (1.0, 2.0, 3.0):
        v = float(js_divergence(p, q, tau))
        assert v == pytest.approx(js_numpy(p.numpy(), q.numpy(), tau), rel=1e-5)
        assert v == pytest.approx(float(js_divergence(q, p, tau)), rel=1e-6)
        assert 0.0 <= v <= math.log(2.0)
    assert float(js_divergence(p, p.clone(), 2.0)) == pytest.approx(0.0, abs=1e-7)
    # disjoint one-hot distributions reach the bound ln 2, without NaN from log 0
    far = torch.tensor([[100.0, -100.0]])
    v = js_divergence(far, -far, 1.0)
    assert torch.isfinite(v) and float(v) == pytest.approx(math.log(2.0), rel=1e-6)


def test_js_gradients_finite_for_saturated_logits():
    p = torch.tensor([[200.0, -200.0]], requires_grad=True)
    q = torch.tensor([[-200.0, 200.0]], requires_grad=True)
    js_divergence(p, q, 1.0).backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()


# -------------------------------------------------------------------------------------- triplet
def test_cosine_distance_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    torch.testing.assert_close(cosine_distance(a, b), torch.tensor([0.0, 1.0, 2.0]))


def test_triplet_explicit_numbers():
    a = torch.tensor([[1.0, 0.0]])
    # cd(a, p) = 0, cd(a, n) = 1: max(0 − 1 + 0.5, 0) = 0
    assert float(triplet(a, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 0.5)) == 0.0
    # cd(a, p) = 1, cd(a, n) = 1 − 1/√2: 1 − (1 − 1/√2) + 0.2
    v = triplet(a, torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]), 0.2)
    assert float(v) == pytest.approx(1 / math.sqrt(2) + 0.2, rel=1e-6)


def test_triplet_per_sample_margin_is_batch_mean():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # cd = 1 − 1/√2, 0
    n = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # cd = 1, 1
    margin = torch.tensor([0.1, 2.0])
    s1 = max((1 - 1 / math.sqrt(2)) - 1 + 0.1, 0.0)  # = 0 (hinge)
    s2 = max(0.0 - 1 + 2.0, 0.0)  # = 1
    assert float(triplet(a, p, n, margin)) == pytest.approx((s1 + s2) / 2, rel=1e-6)
    # a scalar margin equal to the per-sample one gives the same value
    same = torch.tensor([0.7, 0.7])
    assert float(triplet(a, p, n, same)) == pytest.approx(float(triplet(a, p, n, 0.7)))


def test_triplet_numpy_random():
    g = torch.Generator().manual_seed(2)
    a, p, n = (torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3))
    m = torch.rand(6, generator=g, dtype=torch.float64)

    def cd(u, v):
        u, v = u.numpy(), v.numpy()
        return 1 - (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))

    ref = np.maximum(cd(a, p) - cd(a, n) + m.numpy(), 0).mean()
    assert float(triplet(a, p, n, m)) == pytest.approx(ref, rel=1e-10)
