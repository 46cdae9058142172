"""Deletion and insertion curves of a saliency map (Petsiuk, Das & Saenko, "RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018, §4.1 "Deletion/Insertion").

The pixels of an image are ranked by a map (most salient first). Deletion replaces the first
n pixels with the blurred image and records the model's true-class logit margin l_y − l_{1−y}
(K > 2 classes: l_y − max_{j≠y} l_j, over the strongest competitor) as n grows from 0 to all
pixels in `steps` equal steps; insertion starts from the blurred image and
puts the first n original pixels back. A map that ranks the model's evidence first makes the
deletion curve fall fast (low area) and the insertion curve rise fast (high area). The area under
each curve (trapezoid over the removed/inserted fraction 0…1) is reported per image, with a
random pixel order as the reference: a map no better than chance gives random's areas.

Replacement is SAGE's blur (`salience.losses.sage.gaussian_blur`, §3.1's views; σ and kernel from
`methods.sage`), not RISE's zeros for deletion: black pixels are out of distribution for a model
trained on natural images and make every order look faithful. Blurring the normalised tensor
equals normalising the blurred image (losses/sage.py), so the composite is taken on the model's
input tensor. Maps on the CAM grid are upsampled bilinearly to the image (as DD Fig. 1 panels,
visualize.py); ties in the ranking (a constant map, a flat plateau) are broken by a random order,
so a constant map is a random map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from salience.losses.sage import gaussian_blur

__all__ = ["pixel_order", "random_order", "margin_curves", "curve_auc", "LogitsFn"]

LogitsFn = Callable[[Tensor], Tensor]  # B×3×H×W model input → B×2 logits


def pixel_order(maps: Tensor, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Pixel indices (row-major, B×H·W, int64) from most to least salient.

    `maps` B×h×w (any scale) is upsampled bilinearly to `size` = (H, W); equal values are ordered
    by a random permutation drawn from `generator` (so a constant map gives a random order)."""
    if maps.dim() != 3:
        raise ValueError(f"pixel_order: expected B×h×w maps, got {tuple(maps.shape)}")
    up = maps.float().unsqueeze(1)
    if tuple(up.shape[-2:]) != tuple(size):
        up = F.interpolate(up, size=size, mode="bilinear", align_corners=False)
    up = up.flatten(1)
    tie = torch.argsort(torch.rand(up.shape, generator=generator), dim=1)
    by_value = torch.argsort(-up.gather(1, tie), dim=1, stable=True)
    return tie.gather(1, by_value)


def random_order(batch: int, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    """The reference: a uniformly random pixel order per image (B×H·W)."""
    return torch.argsort(torch.rand((batch, size[0] * size[1]), generator=generator), dim=1)


def _margin(logits: Tensor, labels: Tensor) -> Tensor:
    """l_y − max_{j≠y} l_j (B×K → B): the margin over the strongest other class, which for K = 2
    is exactly l_y − l_{1−y}."""
    lab = labels.long().view(-1, 1)
    others = logits.scatter(1, lab, float("-inf"))
    return (logits.gather(1, lab) - others.max(dim=1, keepdim=True).values).squeeze(1)


@torch.no_grad()
def margin_curves(
    logits_fn: LogitsFn,
    x: Tensor,
    labels: Tensor,
    order: Tensor,
    *,
    mode: str,
    steps: int,
    sigma: float,
    kernel_size: int,
    batch_size: int = 256,
) -> Tensor:
    """True-class logit margin after each step of deletion or insertion: B×(steps + 1).

    `x` B×3×H×W model input, `labels` B (0/1), `order` B×H·W from `pixel_order`/`random_order`,
    `mode` "deletion" or "insertion". Step s changes the first round(s·H·W/steps) pixels of the
    order, so column 0 is the intact (deletion) or fully blurred (insertion) image."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"margin_curves: mode must be deletion or insertion, got {mode!r}")
    if steps < 1:
        raise ValueError(f"margin_curves: steps must be ≥ 1, got {steps}")
    b, c, h, w = x.shape
    if order.shape != (b, h * w):
        raise ValueError(
            f"margin_curves: order {tuple(order.shape)} does not match images {tuple(x.shape)}"
        )
    order = order.to(x.device)  # orders are drawn on the CPU (seeded generators)
    blurred = gaussian_blur(x, sigma, kernel_size)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(b, -1))
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * (h * w) / steps).long()
    out = torch.empty(b, steps + 1)
    for s, n in enumerate(counts.tolist()):
        changed = (rank < n).view(b, 1, h, w).to(x.dtype)  # 1 where the pixel is replaced/inserted
        if mode == "deletion":
            xs = x * (1 - changed) + blurred * changed
        else:
            xs = blurred * (1 - changed) + x * changed
        parts = [logits_fn(xs[i : i + batch_size]) for i in range(0, b, batch_size)]
        out[:, s] = _margin(torch.cat(parts).float().cpu(), labels.cpu())
    return out


def curve_auc(curves: np.ndarray | Tensor) -> np.ndarray:
    """Area under each curve (rows of B×(steps + 1)) over the fraction 0…1, trapezoid rule."""
    y = np.asarray(curves, dtype=np.float64)
    steps = y.shape[1] - 1
    return (y[:, 1:] + y[:, :-1]).sum(1) / (2.0 * steps)
