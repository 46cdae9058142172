"""Shared machinery of the CYBORG-family methods (DD §4): one forward pass gives the logits and
both class CAMs; the subclass says which saliency terms to add and with which weights.

Total = α·CE + Σ weight_i · term_i (DD §5.3: α = β = 0.5 for cyborg/difference, α = β = γ = 0.3 for
per-class/contrast). CYBORG's own code writes α·CE + (1 − α)·MSE; with α = β = 0.5 both are equal,
set beta = 1 − alpha to get the CYBORG form (docs/decisions.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from salience.cam import true_false_cams
from salience.errors import ConfigError
from salience.methods.base import LossOutput, Method, cross_entropy, masked, zero


class CamMethod(Method):
    """Base of cyborg, difference, perclass, contrast and fooling."""

    defaults: ClassVar[dict[str, Any]] = {"alpha": 0.5, "beta": 0.5, "cam_class": "true"}

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        if self.params["cam_class"] not in ("true", "predicted"):
            raise ConfigError(f"methods.{self.name}.cam_class: must be 'true' or 'predicted'")
        for key in ("alpha", "beta", "gamma"):  # numbers already (Method checks the types)
            if key in self.params and not self.params[key] >= 0:
                raise ConfigError(f"methods.{self.name}.{key}: must be a number >= 0")

    def target(self, batch: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        """Human map on the CAM grid (B×g×g); `fooling` overrides this with the border frame."""
        return batch["map_cam"]

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        """Weighted saliency terms on annotated samples only."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        out = model.forward_all(batch["image"])
        ce = cross_entropy(out.logits, batch["label"])
        parts = {"ce": self.params["alpha"] * ce}
        cams = model.cams(out)
        # cam_class 'predicted' reproduces the official CYBORG code (docs/reference-implementations.md §1.1);
        # 'true' is DD's definition and the later CVRL code.
        cls = (
            batch["label"] if self.params["cam_class"] == "true" else out.logits.argmax(1).detach()
        )
        t, f = true_false_cams(cams, cls)
        h = self.target(batch, tuple(t.shape[-2:]))
        has = batch["has_map_cam"] if h is batch["map_cam"] else h.new_ones(h.shape[0], dtype=bool)
        if bool(has.any()):
            parts.update(self.terms(masked(t, has), masked(f, has), masked(h, has)))
        else:  # no annotated sample in this batch: CE only, but keep the graph shape stable
            parts.update({k: zero(ce) for k in self.term_names()})
        total = sum(parts.values())
        return LossOutput(total=total, parts=parts, logits=out.logits)

    def term_names(self) -> tuple[str, ...]:
        return ("saliency",)
