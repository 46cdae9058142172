"""Pure functions of SAGE (Crum & Czajka, arXiv 2511.12744, §3): the saliency-based views (§3.1),
the Jensen–Shannon logit alignment term (§3.2, Eqs. 1–3) and the cosine triplet term (§3.3, Eqs. 4–6).

No module state and no weighting: λ, α, 2^τ and the margin policy are applied by
`salience.methods.sage`. `composite` is also Boyd et al.'s blur composite (methods/boyd_blur.py).

The blur runs on the ImageNet-normalised tensor the loader gives. That equals blurring the raw image
and normalising afterwards: the Gaussian weights sum to 1 and the padding is a reflection, so the
blur commutes with the per-channel affine normalisation (docs/reference-implementations.md §6 asked).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gaussian_blur",
    "composite",
    "blur_views",
    "js_divergence",
    "triplet",
    "cosine_distance",
]


def _band(n: int, w: Tensor) -> Tensor:
    """(n + k − 1)×n matrix B with B[j + t, j] = w[t]: `padded_row @ B` is the valid 1-D
    correlation of a reflect-padded row of length n + k − 1 with the kernel w."""
    k = w.shape[0]
    cols = torch.arange(n, device=w.device)
    rows = torch.arange(k, device=w.device)[:, None] + cols[None, :]
    band = w.new_zeros(n + k - 1, n)
    band[rows, cols.expand(k, n)] = w[:, None].expand(k, n)
    return band


def gaussian_blur(x: Tensor, sigma: float, kernel_size: int = 7) -> Tensor:
    """G(x): Gaussian blur with reflect padding, B×C×H×W, differentiable; the same numbers as
    torchvision's `gaussian_blur` (weights ∝ exp(−i²/2σ²), normalised; tested against it).

    A k×k Gaussian is the outer product of two 1-D kernels, so blurring is a pass along the width
    and one along the height of the padded image, each a product with a banded matrix: 2k instead
    of k² multiplications per pixel, on BLAS (Boyd's σ = 16 at 48 px has k = 95; BENCHMARKS.md,
    "Gaussian blur"). Plain torch also spares every SAGE/Boyd job torchvision's import."""
    k = int(kernel_size)
    if k < 1 or k % 2 == 0 or not sigma > 0:
        raise ValueError(
            f"gaussian_blur: kernel_size must be odd and positive and sigma > 0, got {kernel_size}, {sigma}"
        )
    r = k // 2
    height, width = x.shape[-2:]
    if r >= min(height, width):
        raise ValueError(
            f"gaussian_blur: kernel_size {k} needs images larger than {r} px for reflect padding, got {(height, width)}"
        )
    i = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    w = torch.exp(-0.5 * (i / float(sigma)) ** 2)
    w = w / w.sum()
    band_w = _band(width, w)
    band_h = band_w if height == width else _band(height, w)
    y = F.pad(x, [r, r, r, r], mode="reflect")  # B×C×(H+2r)×(W+2r)
    y = y @ band_w  # along the width: B×C×(H+2r)×W
    return band_h.t() @ y  # along the height: B×C×H×W


def _as_b1hw(h: Tensor, x: Tensor) -> Tensor:
    """Human map as B×1×H×W matching `x` (accepts B×H×W or B×1×H×W)."""
    if h.dim() == 3:
        h = h.unsqueeze(1)
    if h.dim() != 4 or h.shape[1] != 1 or h.shape[0] != x.shape[0] or h.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"saliency map {tuple(h.shape)} does not match image {tuple(x.shape)}: need B×H×W or "
            "B×1×H×W at input resolution"
        )
    return h.to(x.dtype)


def composite(x: Tensor, h: Tensor, blurred: Tensor) -> Tensor:
    """h·x + (1 − h)·blurred: keeps x where h = 1 and the blurred image where h = 0."""
    h = _as_b1hw(h, x)
    return h * x + (1.0 - h) * blurred


def blur_views(
    x: Tensor, h: Tensor, sigma: float, kernel_size: int = 7
) -> tuple[Tensor, Tensor, Tensor]:
    """SAGE §3.1: (x' = G(x), x̃ = h·x + (1−h)·G(x), x̃' = (1−h)·x + h·G(x)).

    x̃ keeps the salient regions sharp and blurs the rest; x̃' blurs the salient regions (it is the
    keep-view of the inverse map x'_h = 1 − h, as in the paper's Fig. 2)."""
    g = gaussian_blur(x, sigma, kernel_size)
    h4 = _as_b1hw(h, x)
    return g, composite(x, h4, g), composite(x, 1.0 - h4, g)


def js_divergence(logits_p: Tensor, logits_q: Tensor, tau: float) -> Tensor:
    """Batch mean of JS(softmax(p/τ) ‖ softmax(q/τ)) (SAGE Eqs. 1–2), natural log, not scaled.

    JS = ½·KL(P‖M) + ½·KL(Q‖M), M = ½(P + Q). Computed from log-softmaxes (log M by logsumexp) so
    that saturated probabilities give no log(0). Both sides receive gradients: the paper detaches
    neither view, and JS is symmetric in its arguments. 0 ≤ JS ≤ ln 2.
    """
    if logits_p.shape != logits_q.shape or logits_p.dim() != 2:
        raise ValueError(
            f"js_divergence: logits {tuple(logits_p.shape)} vs {tuple(logits_q.shape)}"
        )
    logp = F.log_softmax(logits_p / tau, dim=1)
    logq = F.log_softmax(logits_q / tau, dim=1)
    logm = torch.logsumexp(torch.stack([logp, logq]), dim=0) - math.log(2.0)
    kl_pm = (logp.exp() * (logp - logm)).sum(dim=1)
    kl_qm = (logq.exp() * (logq - logm)).sum(dim=1)
    return (0.5 * kl_pm + 0.5 * kl_qm).mean()


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """cs(a, b) = 1 − cosine similarity, per row (B×D → B)."""
    return 1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)


def triplet(anchor: Tensor, positive: Tensor, negative: Tensor, margin: Tensor | float) -> Tensor:
    """SAGE Eq. 4: batch mean of max(cs(a, p) − cs(a, n) + margin, 0); margin scalar or B."""
    d = cosine_distance(anchor, positive) - cosine_distance(anchor, negative)
    return torch.clamp(d + margin, min=0.0).mean()
