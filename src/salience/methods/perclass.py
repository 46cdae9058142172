"""Per-class Salience (DD §4): α·CE + β·MSE(h, norm t) + γ·MSE(1 − h, norm f); α = β = γ = 0.3."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("perclass")
class PerClass(CamMethod):
    name = "perclass"
    label = "Per-class Salience"
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 0.3,
        "beta": 0.3,
        "gamma": 0.3,
        "cam_class": "true",
    }

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        true_term, false_term = cam_terms.perclass(t, f, h)
        return {
            "saliency": self.params["beta"] * true_term,
            "saliency_false": self.params["gamma"] * false_term,
        }

    def term_names(self) -> tuple[str, ...]:
        return ("saliency", "saliency_false")
