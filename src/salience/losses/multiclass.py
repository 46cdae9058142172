"""Difference, Per-class and Contrast Salience for K classes (issue 12; docs/decisions.md,
"Multi-class Difference, Per-class and Contrast Salience").

DD §3–4 define the three terms for binary tasks, with one false-class CAM f = cam_{1−y}; DD §7
leaves open which f to use once there are K − 1 false classes. The switch `false_class` names it:

  strongest  f = cam_s,  s = argmax_{j≠y} logit_j (the class the decision must beat; ties → the
             lowest index; the argmax is not differentiated, the selected CAM is)
  mean       f = 1/(K−1) · Σ_{j≠y} cam_j
  pairwise   the false-class term averaged over every j ≠ y, with f = cam_j in turn

Every function takes all K CAMs of one forward pass, unnormalised (B×K×g×g, as
`salience.cam.class_activation_maps` returns them), the logits (B×K), the true labels (B, integers
in [0, K)) and the human map h (B×g×g, in [0, 1], already on the CAM grid), and returns batch-mean
MSEs exactly as `salience.losses.cam_terms` does (`F.mse_loss`, mean over every element; norm is
`salience.cam.minmax`, per map). With K = 2 every choice gives bit for bit the numbers of
`cam_terms` on (t, f) = (cam_y, cam_{1−y}) (tests/test_multiclass_terms.py).

Loss weights (α, β, γ) are applied by the methods, not here. A NaN logit makes the `strongest`
terms NaN (never a silently chosen class), so the training loop's divergence check still fires.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from salience.cam import minmax

__all__ = [
    "FALSE_CLASSES",
    "DEFAULT_FALSE_CLASS",
    "check_inputs",
    "true_cam",
    "false_cams",
    "strongest_false_class",
    "false_class_cams",
    "difference",
    "perclass",
    "contrast",
]

FALSE_CLASSES = ("strongest", "mean", "pairwise")
DEFAULT_FALSE_CLASS = "strongest"


def check_inputs(
    cams: Tensor, logits: Tensor, labels: Tensor, h: Tensor | None, false_class: str
) -> int:
    """Validate shapes and the choice; returns K.

    Raises ValueError (one line) for an unknown `false_class`, K < 2, a shape mismatch between
    cams (B×K×g×g), logits (B×K), labels (B) and h (B×g×g), or a label outside [0, K).
    """
    if false_class not in FALSE_CLASSES:
        raise ValueError(
            f"false_class {false_class!r} is unknown (choose {', '.join(FALSE_CLASSES)})"
        )
    if cams.dim() != 4:
        raise ValueError(f"cams must be B×K×g×g, got shape {tuple(cams.shape)}")
    b, k = cams.shape[:2]
    if k < 2:
        raise ValueError(f"cams have K = {k} classes; the false-class terms need K ≥ 2")
    if tuple(logits.shape) != (b, k):
        raise ValueError(f"logits {tuple(logits.shape)} do not match cams {tuple(cams.shape)}")
    if tuple(labels.shape) != (b,):
        raise ValueError(f"labels {tuple(labels.shape)} do not match cams {tuple(cams.shape)}")
    if h is not None and tuple(h.shape) != (b, *cams.shape[2:]):
        raise ValueError(f"human map {tuple(h.shape)} does not match cams {tuple(cams.shape)}")
    if b:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"labels must lie in [0, {k}) for K = {k} classes, got {lo}…{hi}")
    return k


def true_cam(cams: Tensor, labels: Tensor) -> Tensor:
    """t = cam_y: B×K×g×g CAMs, B labels → B×g×g."""
    idx = labels.long().view(-1, 1, 1, 1).expand(-1, 1, *cams.shape[-2:])
    return cams.gather(1, idx).squeeze(1)


def false_cams(cams: Tensor, labels: Tensor) -> Tensor:
    """The K − 1 false-class CAMs of each sample, in ascending class order: B×(K−1)×g×g."""
    k = cams.shape[1]
    j = torch.arange(k - 1, device=cams.device).view(1, -1)
    idx = j + (j >= labels.long().view(-1, 1)).long()  # skip the true class
    return cams.gather(1, idx.view(*idx.shape, 1, 1).expand(-1, -1, *cams.shape[-2:]))


def strongest_false_class(logits: Tensor, labels: Tensor) -> Tensor:
    """s = argmax_{j≠y} logit_j per sample (B long; ties → the lowest index; not differentiated)."""
    masked = logits.detach().clone()
    masked.scatter_(1, labels.long().view(-1, 1), float("-inf"))
    # torch.argmax returns the first maximal index; a NaN counts as maximal, so it is caught by
    # the caller, which makes the term NaN instead of trusting that choice.
    return masked.argmax(dim=1)


def false_class_cams(
    cams: Tensor, logits: Tensor, labels: Tensor, false_class: str = DEFAULT_FALSE_CLASS
) -> Tensor:
    """The false-class CAM(s) f of each choice, unnormalised: B×1×g×g for `strongest` and `mean`,
    B×(K−1)×g×g for `pairwise` (ascending class order). Shapes are checked (ValueError)."""
    check_inputs(cams, logits, labels, None, false_class)
    return _false(cams, logits, labels, false_class)


def _false(cams: Tensor, logits: Tensor, labels: Tensor, false_class: str) -> Tensor:
    if false_class == "strongest":
        s = strongest_false_class(logits, labels)
        f = cams.gather(1, s.view(-1, 1, 1, 1).expand(-1, 1, *cams.shape[-2:]))
        nan = torch.isnan(logits.detach()).any(dim=1).view(-1, 1, 1, 1)
        return torch.where(nan, torch.full_like(f, float("nan")), f)
    fs = false_cams(cams, labels)
    if false_class == "mean":
        return fs.mean(dim=1, keepdim=True)
    return fs


def _split(
    cams: Tensor, logits: Tensor, labels: Tensor, h: Tensor, false_class: str
) -> tuple[Tensor, Tensor, Tensor]:
    """(t, f, h) as B×1×g×g, B×J×g×g, B×1×g×g: the singleton axis broadcasts t and h against the
    J false-class maps, so one mean over B×J×g×g is the mean over j of each j's batch-mean MSE."""
    check_inputs(cams, logits, labels, h, false_class)
    f = _false(cams, logits, labels, false_class)
    return true_cam(cams, labels).unsqueeze(1), f, h.unsqueeze(1)


def difference(
    cams: Tensor, logits: Tensor, labels: Tensor, h: Tensor, false_class: str = DEFAULT_FALSE_CLASS
) -> Tensor:
    """Difference Salience (DD Eq. 3) for K classes: MSE(h, norm(t − f)), averaged over the J
    false-class maps of `false_class` (J = 1 except `pairwise`, J = K − 1). Scalar tensor."""
    t, f, h1 = _split(cams, logits, labels, h, false_class)
    d = minmax(t - f)
    return F.mse_loss(d, h1.expand_as(d))


def perclass(
    cams: Tensor, logits: Tensor, labels: Tensor, h: Tensor, false_class: str = DEFAULT_FALSE_CLASS
) -> tuple[Tensor, Tensor]:
    """Per-class Salience (DD Eq. 4) for K classes: (MSE(h, norm t), MSE(1 − h, norm f)), the
    second averaged over the J false-class maps of `false_class`."""
    t, f, h1 = _split(cams, logits, labels, h, false_class)
    nf = minmax(f)
    return F.mse_loss(minmax(t.squeeze(1)), h), F.mse_loss(nf, (1.0 - h1).expand_as(nf))


def contrast(
    cams: Tensor, logits: Tensor, labels: Tensor, h: Tensor, false_class: str = DEFAULT_FALSE_CLASS
) -> tuple[Tensor, Tensor]:
    """Contrast Salience (DD Eq. 5) for K classes: (MSE(h, norm t), MSE(1 − norm t, norm f)), the
    second averaged over the J false-class maps of `false_class`."""
    t, f, _ = _split(cams, logits, labels, h, false_class)
    nt = minmax(t)
    nf = minmax(f)
    return F.mse_loss(nt.squeeze(1), h), F.mse_loss(nf, (1.0 - nt).expand_as(nf))
