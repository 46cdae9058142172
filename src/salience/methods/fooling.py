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
    name = "fooling"
    label = "Passive fooling"
    uses_maps = False

    def target(self, batch: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        frame = cam_terms.border_target(*grid, like=batch["image"])
        return frame.expand(batch["image"].shape[0], *grid)

    def terms(self, t: Tensor, f: Tensor, h: Tensor) -> dict[str, Tensor]:
        return {"saliency": self.params["beta"] * cam_terms.cyborg(t, f, h)}
