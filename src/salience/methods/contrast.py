"""Contrast Salience (DD §4): α·CE + β·MSE(h, norm t) + γ·MSE(1 − norm t, norm f); α = β = γ = 0.3."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("contrast")
class Contrast(CamMethod):
    name = "contrast"
    label = "Contrast Salience"
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 0.3,
        "beta": 0.3,
        "gamma": 0.3,
        "cam_class": "true",
    }

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        true_term, contrast_term = cam_terms.contrast(t, f, h)
        return {
            "saliency": self.params["beta"] * true_term,
            "saliency_contrast": self.params["gamma"] * contrast_term,
        }

    def term_names(self) -> tuple[str, ...]:
        return ("saliency", "saliency_contrast")
