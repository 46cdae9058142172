"""The backbone contract and the classifier every method trains.

Contract (timm's forward_features/forward_head split, docs/conventions.md §4):
- `Backbone.forward(x)` returns the B×C×H×W tensor that the classifier global-average-pools
  (channels-first; Swin is permuted). CAMs under `cam_layer: pooled` come from this tensor.
- `Backbone.pyramid(x)` returns intermediate maps finest → coarsest, the last one being
  `forward(x)`; decoders (Unet+Gaze, MENTOR) are built on it.
- `Backbone.legacy_features` holds, after each forward, the tensor the official CYBORG code hooks
  (`cam_layer: cyborg_legacy`, docs/decisions.md), or None where the backbone has no such layer.
- `Classifier.features(x)` / `Classifier.head(features)` split the forward pass, and
  `Classifier.forward_all(x)` returns logits, features, CAM features and the pooled embedding from a
  single pass, so CAM losses never need a second trunk pass (unlike CYBORG's DenseNet code).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from numbers import Integral

import torch
from torch import Tensor, nn

from salience.cam import class_activation_maps
from salience.errors import ConfigError
from salience.models.catalogue import BACKBONE_MODULES, check_backbone_name
from salience.registry import Registry

log = logging.getLogger(__name__)

CAM_LAYERS = ("pooled", "cyborg_legacy")


class Backbone(nn.Module):
    """Base class: subclasses set `num_features` and implement `forward` and `pyramid`."""

    num_features: int = 0
    #: "random" or "imagenet:<file>"; recorded as an MLflow tag
    weights_origin: str = "random"
    #: network stride of `forward`'s output (input size / grid size)
    stride: int = 32

    def __init__(self) -> None:
        super().__init__()
        self.legacy_features: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pyramid(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def pyramid_channels(self) -> list[int]:
        """Channels of each `pyramid` level (finest → coarsest)."""
        raise NotImplementedError


BACKBONES: Registry = Registry("backbone")


def build_backbone(name: str, weights: str = "auto") -> Backbone:
    """Build a registered backbone. `weights`: "auto" (ImageNet file from torch's hub cache when
    present, else random init with a log line), "none" (random init), or a path to a state dict."""
    check_backbone_name(name)
    importlib.import_module(BACKBONE_MODULES[name])
    return BACKBONES.get(name)(weights=weights)


def _import_all() -> None:
    """Import every backbone module (registration happens at import)."""
    for mod in sorted(set(BACKBONE_MODULES.values())):
        importlib.import_module(mod)


@dataclass
class ModelOutput:
    logits: Tensor  # B×K
    features: Tensor  # B×C×H×W, the tensor the head pools
    cam_features: Tensor  # B×C'×H×W, the tensor CAMs are computed on (cam_layer)
    embedding: Tensor  # B×C, pooled features before the linear layer (SAGE's z)


class Classifier(nn.Module):
    """Backbone → GAP → Linear(C, K). `forward(x)` returns logits."""

    def __init__(self, backbone: Backbone, num_classes: int = 2, cam_layer: str = "pooled") -> None:
        super().__init__()
        if cam_layer not in CAM_LAYERS:
            raise ConfigError(
                f"model.cam_layer {cam_layer!r}: choose one of {', '.join(CAM_LAYERS)}"
            )
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, Integral)
            or num_classes < 2
        ):
            raise ConfigError(
                f"num_classes {num_classes!r}: a classifier needs at least 2 classes "
                f"(binary tasks use 2)"
            )
        self.backbone = backbone
        self.fc = nn.Linear(backbone.num_features, num_classes)
        self.cam_layer = cam_layer

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def head(self, features: Tensor) -> Tensor:
        return self.fc(features.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def forward_all(self, x: Tensor) -> ModelOutput:
        feats = self.features(x)
        emb = feats.mean(dim=(2, 3))
        if self.cam_layer == "pooled":
            cam_feats = feats
        else:
            cam_feats = self.backbone.legacy_features
            if cam_feats is None:
                raise ConfigError(
                    f"model.cam_layer 'cyborg_legacy' is not defined for backbone "
                    f"{type(self.backbone).__name__}; use 'pooled'"
                )
        return ModelOutput(
            logits=self.fc(emb), features=feats, cam_features=cam_feats, embedding=emb
        )

    def cams(self, out: ModelOutput) -> Tensor:
        """B×K×H×W class activation maps of `out` (no bias)."""
        return class_activation_maps(out.cam_features, self.fc.weight)


def feature_grid(backbone: Backbone, image_size: int) -> int:
    """Side of the CAM grid for square inputs of `image_size` (one dry forward pass, no grad)."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        g = backbone(torch.zeros(1, 3, image_size, image_size)).shape[-1]
    backbone.train(was_training)
    return int(g)


def find_backbone(model: nn.Module) -> Backbone:
    """The (first) Backbone inside any method's model; TypeError when there is none."""
    for m in model.modules():
        if isinstance(m, Backbone):
            return m
    raise TypeError(f"{type(model).__name__} contains no Backbone")
