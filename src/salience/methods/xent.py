"""Cross-entropy only (the papers' "Xent" baseline)."""

from __future__ import annotations

from torch import Tensor, nn

from salience.methods.base import METHODS, LossOutput, Method, cross_entropy


@METHODS.register("xent")
class Xent(Method):
    label = "Baseline (Xent)"
    uses_maps = False

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        logits = model(batch["image"])
        ce = cross_entropy(logits, batch["label"])
        return LossOutput(total=ce, parts={"ce": ce}, logits=logits)
