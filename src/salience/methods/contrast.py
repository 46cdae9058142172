"""Contrast Salience (DD §4): α·CE + β·MSE(h, norm t) + γ·MSE(1 − norm t, norm f); α = β = γ = 0.3.
K > 2 classes: f (or each false class in turn) as `false_class` says (losses.multiclass)."""

from __future__ import annotations

from salience.losses import cam_terms, multiclass
from salience.methods._cam_family import FALSE_CLASS, TWO_TERMS, CamMethod
from salience.methods.base import METHODS


@METHODS.register("contrast")
class Contrast(CamMethod):
    label = "Contrast Salience"
    settings = {**TWO_TERMS, "false_class": FALSE_CLASS}
    term_names = ("saliency", "saliency_contrast")
    term_weights = ("beta", "gamma")
    cam_terms = staticmethod(cam_terms.contrast)
    multiclass_terms = staticmethod(multiclass.contrast)
