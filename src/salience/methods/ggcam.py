"""GG-CAM (Zhu, Salcudean, Rohling, "Gaze-Guided Class Activation Mapping", VINCI 2022;
arXiv 2202.07107; hz-zhu/GG-CAM), a SAGE baseline (SAGE §4.2).

Head (`CAMLayer` in GG-CAM's my_resnet.py): cam[b, k] = mean_c(W[k, c]·F[b, c]) (a 1×1 conv, channel
*mean*), logits = GAP(cam) + bias, so the CAM is exactly the map whose average is the logit.
Loss (my_ResCAMNet.py), uncertainty-weighted with learnable log σ (σ = e^s):
    L = CE/σ_c² + log(σ_c + 1) + β·[MSE(cam_c, h)/(2σ_d²) + log(σ_d + 1)]
cam_c = the un-normalised CAM of class c on the feature grid, h = batch['map_cam'] (annotated rows).
Decisions (docs/decisions.md):
- `class_index: true_label` fixes GG-CAM's bug (c = int(sigmoid(...)) is always 0, so the class-0 CAM
  is pulled to the gaze for every image, docs/reference-implementations.md §9); `legacy_bug` keeps it.
- init log σ_c = log σ_d = 0 (σ = 1: CE weight 1, MSE weight ½, Kendall et al.'s usual start).
  GG-CAM's (7, −23) give a CE weight e^−14 ≈ 8e-7: with SGD lr 0.005 for 50 epochs (SAGE §4.2) the
  classifier would hardly train; they remain settable.
- `weighting: fixed` replaces the learned weights by CE + β·MSE; with β = 0 that is plain CE.
The log σ are parameters of the model, so the training loop's optimiser updates them.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.cam import class_activation_maps
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy, masked, zero
from salience.methods.settings import Setting
from salience.models.base import Backbone, ModelOutput


class GGCamClassifier(nn.Module):
    """Backbone + GG-CAM's CAMLayer (+ the learnable log σ when uncertainty weighting is on)."""

    def __init__(
        self, backbone: Backbone, num_classes: int = 2, log_sigma: dict[str, float] | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.cam_conv = nn.Conv2d(backbone.num_features, num_classes, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.log_sigma = nn.ParameterDict(
            {k: nn.Parameter(torch.tensor(float(v))) for k, v in (log_sigma or {}).items()}
        )

    def _weight(self) -> Tensor:
        # mean over channels = sum with W / C: the standard CAM of an equivalent linear layer
        w = self.cam_conv.weight
        return w.view(w.shape[0], w.shape[1]) / w.shape[1]

    def forward_all(self, x: Tensor) -> ModelOutput:
        feats = self.backbone(x)
        emb = feats.mean(dim=(2, 3))
        logits = emb @ self._weight().t() + self.bias  # = GAP(cam) + bias, without building cams
        return ModelOutput(logits=logits, features=feats, cam_features=feats, embedding=emb)

    def cams(self, out: ModelOutput) -> Tensor:
        """B×K×H×W CAMs (no bias): GAP(cams) + bias = logits."""
        return class_activation_maps(out.cam_features, self._weight())

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_all(x).logits


@METHODS.register("ggcam")
class GGCam(Method):
    label = "GG-CAM"
    supported_backbones = None  # all: the CAM head sits on the pooled tensor (Swin-T included)
    settings: ClassVar[dict[str, Setting]] = {
        "weighting": Setting(
            "uncertainty",
            "choice",
            choices=("uncertainty", "fixed"),
            doc="learned log σ (GG-CAM) | fixed: CE + gaze_weight·MSE",
        ),
        "gaze_weight": Setting(
            1.0, "number", low=0, doc="β; 0 switches the gaze term (and its σ) off"
        ),
        "init_log_sigma_ce": Setting(0.0, "number", doc="initial log σ_c (GG-CAM ResNet: 7)"),
        "init_log_sigma_gaze": Setting(
            0.0, "number", doc="initial log σ_d (GG-CAM ResNet: -23, EffNet: -16)"
        ),
        "class_index": Setting(
            "true_label",
            "choice",
            choices=("true_label", "legacy_bug"),
            doc="class of the gazed CAM | legacy_bug: always class 0, as GG-CAM's code",
        ),
    }

    def _uses_gaze(self) -> bool:
        return float(self.params["gaze_weight"]) > 0

    def build_model(
        self,
        backbone: Backbone,
        *,
        cam_layer: str = "pooled",
        stage: str = "train",
        num_classes: int = 2,
    ) -> nn.Module:
        # The CAM is always on the pooled tensor: GG-CAM's head defines logits from it.
        sigmas = {}
        if self.params["weighting"] == "uncertainty":
            sigmas["ce"] = self.params["init_log_sigma_ce"]
            if self._uses_gaze():
                sigmas["gaze"] = self.params["init_log_sigma_gaze"]
        return GGCamClassifier(backbone, num_classes=num_classes, log_sigma=sigmas)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        out = model.forward_all(batch["image"])
        ce = cross_entropy(out.logits, batch["label"])
        has = batch["has_map_cam"].bool()
        mse = None
        if self._uses_gaze():
            if bool(has.any()):
                cams = model.cams(out)
                cls = (
                    batch["label"]
                    if self.params["class_index"] == "true_label"
                    else torch.zeros_like(batch["label"])
                )
                idx = cls.long().view(-1, 1, 1, 1).expand(-1, 1, *cams.shape[-2:])
                cam = cams.gather(1, idx).squeeze(1)
                mse = F.mse_loss(masked(cam, has), masked(batch["map_cam"].to(cam.dtype), has))
            else:
                mse = zero(out.logits)
        beta = float(self.params["gaze_weight"])
        if self.params["weighting"] == "fixed":
            parts = {"ce": ce} if mse is None else {"ce": ce, "gaze": beta * mse}
        else:
            ls = model.log_sigma
            sc = ls["ce"].exp()
            parts = {"ce": ce / sc**2, "uncertainty": torch.log1p(sc)}
            if mse is not None:
                sd = ls["gaze"].exp()
                parts["gaze"] = beta * mse / (2 * sd**2)
                parts["uncertainty"] = parts["uncertainty"] + beta * torch.log1p(sd)
        return LossOutput(total=sum(parts.values()), parts=parts, logits=out.logits)
