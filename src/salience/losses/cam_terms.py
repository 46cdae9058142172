"""Un-weighted saliency terms of the CYBORG family (DD §4; docs/methods.md, "CAM family").

All take the unnormalised true- and false-class CAMs `t`, `f` (B×H×W) and the human map `h`
(B×H×W, in [0, 1], already on the CAM grid) and return batch-mean MSEs (`nn.MSELoss` mean over
B×H×W, as CYBORG's train_cam.py). Weights (α, β, γ) are applied by the methods, not here.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from salience.cam import minmax

__all__ = ["cyborg", "difference", "perclass", "contrast", "border_target"]


def cyborg(t: Tensor, f: Tensor, h: Tensor) -> Tensor:
    """CYBORG: MSE(h, norm t)."""
    return F.mse_loss(minmax(t), h)


def difference(t: Tensor, f: Tensor, h: Tensor) -> Tensor:
    """Difference Salience: MSE(h, norm(t − f)); for K=2 this is the logit-difference map."""
    return F.mse_loss(minmax(t - f), h)


def perclass(t: Tensor, f: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class Salience: (MSE(h, norm t), MSE(1 − h, norm f))."""
    return cyborg(t, f, h), F.mse_loss(minmax(f), 1.0 - h)


def contrast(t: Tensor, f: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Contrast Salience: (MSE(h, norm t), MSE(1 − norm t, norm f))."""
    nt = minmax(t)
    return F.mse_loss(nt, h), F.mse_loss(minmax(f), 1.0 - nt)


def border_target(h: int, w: int, like: Tensor | None = None) -> Tensor:
    """Passive-fooling target (Heo et al. 2019, location fooling): a border frame of width
    max(1, H//7) cells set to 1, centre 0, built directly at CAM resolution (H×W)."""
    import torch

    k = max(1, h // 7)
    kw = max(1, w // 7)
    m = torch.ones(h, w) if like is None else like.new_ones(h, w)
    if h > 2 * k and w > 2 * kw:
        m[k : h - k, kw : w - kw] = 0
    return m
