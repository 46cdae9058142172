"""Class activation maps from the one forward pass that also gives the logits.

CAM (Zhou et al. 2016; docs/methods.md "Notation"): cam_k = Σ_c W[k, c] · F[:, c] with no bias, so that
under `cam_layer: pooled`, GAP(cam_k) + b_k equals logit k exactly. Everything is vectorised
(einsum), differentiable, hook-free, and never calls `.eval()`/`.train()`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["class_activation_maps", "minmax", "difference_salience", "true_false_cams"]


def class_activation_maps(features: Tensor, weight: Tensor) -> Tensor:
    """CAMs of every class: `features` B×C×H×W, `weight` K×C → B×K×H×W (no bias)."""
    if features.dim() != 4 or weight.dim() != 2 or features.shape[1] != weight.shape[1]:
        raise ValueError(
            f"class_activation_maps: features {tuple(features.shape)} and weight "
            f"{tuple(weight.shape)} do not match (need B×C×H×W and K×C)"
        )
    return torch.einsum("bchw,kc->bkhw", features, weight.to(features.dtype))


def minmax(maps: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-map min-max over the last two dims; a constant map gives zeros, never NaN.

    (m − min) / max(max − min, eps): the guard replaces CYBORG's unguarded division (0/0 = NaN for
    a constant CAM, docs/reference-implementations.md §1.1). Gradients stay finite for constant maps.
    """
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(eps)


def _binary_only(fn: str, k: int) -> None:
    """The binary definitions (DD §3) have one false class, cam_{1−y}; with K ≠ 2 classes they
    would index a missing class or silently compare classes 0 and 1, so they refuse."""
    if k != 2:
        raise ValueError(
            f"salience.cam.{fn} is the binary (K = 2) definition but got {k} classes; for K "
            f"classes use salience.losses.multiclass (true_cam, false_class_cams, "
            f"strongest_false_class)"
        )


def true_false_cams(cams: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Split B×2×H×W CAMs into the true-class `t = cam_y` and false-class `f = cam_{1−y}` (B×H×W).

    Binary only (DD §3): raises ValueError when `cams.shape[1]` is not 2 (K classes:
    `salience.losses.multiclass`)."""
    _binary_only("true_false_cams", cams.shape[1])
    idx = labels.long().view(-1, 1, 1, 1).expand(-1, 1, *cams.shape[-2:])
    t = cams.gather(1, idx).squeeze(1)
    f = cams.gather(1, 1 - idx).squeeze(1)
    return t, f


def difference_salience(features: Tensor, weight: Tensor, labels: Tensor) -> Tensor:
    """Difference Salience (DD §3): minmax(cam_y − cam_{1−y}) per sample, B×H×W in [0, 1].

    `features` B×C×H×W, `weight` 2×C, `labels` B in {0, 1}. Binary only: raises ValueError when
    `weight.shape[0]` is not 2 (K classes: `salience.losses.multiclass.difference`)."""
    _binary_only("difference_salience", weight.shape[0])
    t, f = true_false_cams(class_activation_maps(features, weight), labels)
    return minmax(t - f)
