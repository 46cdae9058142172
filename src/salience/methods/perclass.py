"""Per-class Salience (DD §4): α·CE + β·MSE(h, norm t) + γ·MSE(1 − h, norm f); α = β = γ = 0.3."""

from __future__ import annotations

from salience.losses import cam_terms
from salience.methods._cam_family import TWO_TERMS, CamMethod
from salience.methods.base import METHODS


@METHODS.register("perclass")
class PerClass(CamMethod):
    label = "Per-class Salience"
    settings = TWO_TERMS
    term_names = ("saliency", "saliency_false")
    term_weights = ("beta", "gamma")
    cam_terms = staticmethod(cam_terms.perclass)
