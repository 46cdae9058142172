"""Passive fooling (DD experiment a; Heo et al. 2019 location fooling): the CYBORG loss against a
fake target, a border frame of width max(1, H//7) CAM cells set to 1 with the centre 0. It never
reads the human map. The fooled models feed the Difference-Salience visualisation (DD Fig. 1)."""

from __future__ import annotations

from torch import Tensor

from salience.losses import cam_terms
from salience.methods._cam_family import CamMethod
from salience.methods.base import METHODS


@METHODS.register("fooling")
class Fooling(CamMethod):
    label = "Passive fooling"
    uses_maps = False
    cam_terms = staticmethod(cam_terms.cyborg)

    def target(self, batch: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        frame = cam_terms.border_target(*grid, like=batch["image"])
        return frame.expand(batch["image"].shape[0], *grid)
