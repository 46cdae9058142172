"""Difference Salience (DD §4): α·CE + β·MSE(h, norm(t − f))."""

from __future__ import annotations

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("difference")
class Difference(CamMethod):
    label = "Difference Salience"
    cam_terms = staticmethod(cam_terms.difference)
