"""Unet+Gaze (Karargyris et al., "Creation and validation of a chest X-ray dataset with eye-tracking
and report dictation for AI development", Sci. Data 2021; cxr-eye-gaze/eye-gaze-dataset
Experiments/main_Unet.py), a SAGE baseline (SAGE §4.2, "UNET+Gaze [19]").

A U-Net decoder on the backbone predicts the human map at input resolution; a classification head
(GAP → dropout → linear) sits on the deepest encoder level. Loss (main_Unet.py `train_unet`):
    total = γ·CE(logits, y) + (1 − γ)·BCEWithLogits(map logits, h)      (soft target h ∈ [0, 1])
Adapted to single-label tasks: K-class softmax CE (K = 2 on SAGE's binary tasks; Karargyris'
data has K = 3) instead of the 3-column multi-label BCE, our backbones
instead of smp's timm-efficientnet-b0 (docs/reference-implementations.md §8). The map loss uses annotated
samples only. γ = 0.41731 and dropout 0.5 are Karargyris' best static-heatmap run (their
Experiments/README.md); the code's own `--gamma` default is 1.0, which is CE only. γ = 1 gives plain CE.
Evaluation uses the classification head only (`forward`), the decoder is not run.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from salience.methods.base import METHODS, LossOutput, Method, cross_entropy, masked, zero
from salience.methods.settings import Setting
from salience.models.base import Backbone
from salience.models.decoder import SegClassifier


@METHODS.register("unet_gaze")
class UnetGaze(Method):
    label = "Unet+Gaze"
    supported_backbones = None  # all: the decoder adapts to any pyramid (4 or 5 levels)
    settings: ClassVar[dict[str, Setting]] = {
        "gamma": Setting(0.41731, "number", low=0, high=1, doc="γ: weight of CE (1 = CE only)"),
        "dropout": Setting(0.5, "number", low=0, high=0.999, doc="dropout before the linear head"),
    }

    def build_model(
        self,
        backbone: Backbone,
        *,
        cam_layer: str = "pooled",
        stage: str = "train",
        num_classes: int = 2,
    ) -> nn.Module:
        # cam_layer is irrelevant: this method reads no CAM.
        return SegClassifier(
            backbone, num_classes=num_classes, dropout=float(self.params["dropout"])
        )

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        gamma = float(self.params["gamma"])
        has = batch["has_map"].bool()
        if gamma == 1.0:  # CE only: skip the decoder entirely
            logits = model(batch["image"])
            ce = cross_entropy(logits, batch["label"])
            return LossOutput(total=ce, parts={"ce": ce, "map_bce": zero(ce)}, logits=logits)
        logits, map_logits = model.forward_seg(batch["image"])
        ce = cross_entropy(logits, batch["label"])
        if bool(has.any()):
            target = batch["map"].unsqueeze(1).to(map_logits.dtype)
            bce = F.binary_cross_entropy_with_logits(masked(map_logits, has), masked(target, has))
        else:
            bce = zero(map_logits)
        parts = {"ce": gamma * ce, "map_bce": (1 - gamma) * bce}
        return LossOutput(total=sum(parts.values()), parts=parts, logits=logits)
