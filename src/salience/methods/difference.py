"""Difference Salience (DD §4): α·CE + β·MSE(h, norm(t − f))."""

from __future__ import annotations

from torch import Tensor

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("difference")
class Difference(CamMethod):
    name = "difference"
    label = "Difference Salience"

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        return {"saliency": self.params["beta"] * cam_terms.difference(t, f, h)}
