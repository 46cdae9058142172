"""CYBORG (Boyd et al. 2023): α·CE + β·MSE(h, norm t), t = CAM of the true (or predicted) class."""

from __future__ import annotations

from torch import Tensor

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("cyborg")
class Cyborg(CamMethod):
    name = "cyborg"
    label = "CYBORG"

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        return {"saliency": self.params["beta"] * cam_terms.cyborg(t, f, h)}
