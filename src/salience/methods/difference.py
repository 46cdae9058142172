"""Difference Salience (DD §4): α·CE + β·MSE(h, norm(t − f)). K > 2 classes: f (or, under
`false_class: pairwise`, each false class in turn) as `false_class` says (losses.multiclass)."""

from __future__ import annotations

from salience.losses import cam_terms, multiclass
from salience.methods._cam_family import FALSE_CLASS, ONE_TERM, CamMethod
from salience.methods.base import METHODS


@METHODS.register("difference")
class Difference(CamMethod):
    label = "Difference Salience"
    settings = {**ONE_TERM, "false_class": FALSE_CLASS}
    cam_terms = staticmethod(cam_terms.difference)
    multiclass_terms = staticmethod(multiclass.difference)
