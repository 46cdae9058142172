"""Shared machinery of the CYBORG-family methods (DD §4): one forward pass gives the logits and
both class CAMs; the subclass says which saliency terms to add and with which weights.

Total = α·CE + Σ weight_i · term_i (DD §5.3: α = β = 0.5 for cyborg/difference, α = β = γ = 0.3 for
per-class/contrast). CYBORG's own code writes α·CE + (1 − α)·MSE; with α = β = 0.5 both are equal,
set beta = 1 − alpha to get the CYBORG form (docs/decisions.md).

A subclass names its saliency terms once: `term_names` (the logged loss parts) with their weight
settings `term_weights`, and `cam_terms` (a function of losses.cam_terms) giving the un-weighted
terms in that order.

K classes (issue 12): with K = 2 logits the binary code path above runs unchanged. With K > 2,
t = cam_y (y = the label, or the predicted class under `cam_class: predicted`) and the false-class
CAM f follows the method's `false_class` setting through `multiclass_terms` (a function of
losses.multiclass: difference, perclass, contrast); cyborg and fooling read only t
(docs/decisions.md, "Multi-class Difference, Per-class and Contrast Salience").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from salience.cam import true_false_cams
from salience.losses import multiclass
from salience.methods.base import LossOutput, Method, cross_entropy, masked, zero
from salience.methods.settings import Setting


def weight(default: float, doc: str) -> Setting:
    """A loss weight (α, β, γ): a number >= 0."""
    return Setting(default, "number", low=0, doc=doc)


#: cam_class 'predicted' reproduces the official CYBORG code (reference-implementations §1.1);
#: 'true' is DD's definition and the later CVRL code
CAM_CLASS = Setting(
    "true", "choice", choices=("true", "predicted"), doc="class whose CAM is the true CAM t"
)
#: difference, perclass, contrast with K > 2 classes: which false-class CAM f the term uses
#: (losses.multiclass; K = 2 has one false class, and every choice is the paper's term)
FALSE_CLASS = Setting(
    multiclass.DEFAULT_FALSE_CLASS,
    "choice",
    choices=multiclass.FALSE_CLASSES,
    doc="K > 2: f = strongest wrong class | mean of the K − 1 | pairwise average (K = 2: no effect)",
)
#: cyborg, difference, fooling: α·CE + β·term (DD §5.3: α = β = 0.5)
ONE_TERM: dict[str, Setting] = {
    "alpha": weight(0.5, "α: weight of cross-entropy"),
    "beta": weight(0.5, "β: weight of the saliency term"),
    "cam_class": CAM_CLASS,
}
#: per-class, contrast: α·CE + β·true term + γ·second term (DD §5.3: α = β = γ = 0.3)
TWO_TERMS: dict[str, Setting] = {
    "alpha": weight(0.3, "α: weight of cross-entropy"),
    "beta": weight(0.3, "β: weight of the true-class term"),
    "gamma": weight(0.3, "γ: weight of the second (false-class) term"),
    "cam_class": CAM_CLASS,
}


class CamMethod(Method):
    """Base of cyborg, difference, perclass, contrast and fooling."""

    settings: ClassVar[dict[str, Setting]] = ONE_TERM
    #: the logged names of the saliency terms, and the setting weighting each
    term_names: ClassVar[tuple[str, ...]] = ("saliency",)
    term_weights: ClassVar[tuple[str, ...]] = ("beta",)
    #: (t, f, h) → the un-weighted terms, in the order of `term_names` (losses.cam_terms)
    cam_terms: ClassVar[Callable[..., Tensor | tuple[Tensor, ...]]]
    #: K > 2: (cams, logits, labels, h, false_class) → the same terms (losses.multiclass); None
    #: for methods whose term reads t alone (cyborg, fooling)
    multiclass_terms: ClassVar[Callable[..., Tensor | tuple[Tensor, ...]] | None] = None

    def target(self, batch: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        """Human map on the CAM grid (B×g×g); `fooling` overrides this with the border frame."""
        return batch["map_cam"]

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        """Weighted saliency terms (on annotated samples only: the caller masks t, f, h)."""
        return self._weighted(type(self).cam_terms(t, f, h))

    def _weighted(self, values: Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        if not isinstance(values, tuple):
            values = (values,)
        return {
            name: self.params[w] * v
            for name, w, v in zip(self.term_names, self.term_weights, values, strict=True)
        }

    def multiclass_parts(
        self, cams: Tensor, logits: Tensor, cls: Tensor, h: Tensor
    ) -> dict[str, Tensor]:
        """Weighted saliency terms for K > 2 classes (annotated samples only: the caller masks):
        `cams` B×K×g×g, `logits` B×K, `cls` B (the class whose CAM is t), `h` B×g×g."""
        fn = type(self).multiclass_terms
        if fn is None:  # the term reads t alone
            t = multiclass.true_cam(cams, cls)
            return self.terms(t, t, h)
        return self._weighted(fn(cams, logits, cls, h, self.params["false_class"]))

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        out = model.forward_all(batch["image"])
        ce = cross_entropy(out.logits, batch["label"])
        parts = {"ce": self.params["alpha"] * ce}
        cams = model.cams(out)
        cls = (
            batch["label"] if self.params["cam_class"] == "true" else out.logits.argmax(1).detach()
        )
        binary = cams.shape[1] == 2
        if binary:  # the paper's terms on (t, f) = (cam_y, cam_{1−y}), exactly as before issue 12
            t, f = true_false_cams(cams, cls)
        h = self.target(batch, tuple(cams.shape[-2:]))
        has = batch["has_map_cam"] if h is batch["map_cam"] else h.new_ones(h.shape[0], dtype=bool)
        if not bool(has.any()):  # no annotated sample in this batch: CE only, stable graph shape
            parts.update({k: zero(ce) for k in self.term_names})
        elif binary:
            parts.update(self.terms(masked(t, has), masked(f, has), masked(h, has)))
        else:
            m = [masked(v, has) for v in (cams, out.logits, cls, h)]
            parts.update(self.multiclass_parts(*m))
        total = sum(parts.values())
        return LossOutput(total=total, parts=parts, logits=out.logits)
