"""CYBORG (Boyd et al. 2023): α·CE + β·MSE(h, norm t), t = CAM of the true (or predicted) class."""

from __future__ import annotations

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("cyborg")
class Cyborg(CamMethod):
    label = "CYBORG"
    cam_terms = staticmethod(cam_terms.cyborg)
