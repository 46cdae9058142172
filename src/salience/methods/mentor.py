"""MENTOR (Crum & Czajka, "MENTOR: Human Perception-Guided Pretraining for Increased Generalization",
WACV 2025; CVRL/MENTOR), a two-stage SAGE baseline (SAGE §4.2).

Stage `pretrain` (`MENTOR training.ipynb`): encoder + U-Net decoder learn to predict the human map,
    loss = MSE(sigmoid(decoder logits), h) at input resolution; no class labels; the checkpoint with
    the lowest validation loss is kept. Only annotated samples give a loss. Published schedule as
    defaults: Adam, lr 1e-4, 11 epochs (`pretrain_*` settings). In a flipped-map run both the
    training and the validation loss target 1 − h.
Stage `train` (training_code/mentor.py): a plain Classifier whose backbone is the stage-1 encoder,
    fine-tuned with CE.
MENTOR's code transfers the encoder with `load_state_dict(strict=False)` after renaming keys (and copies
EfficientNet weights by position), which hides any mismatch (docs/reference-implementations.md §5). Here
every backbone tensor (parameters and BN buffers) must come from the stage-1 state dict, with its shape;
anything else raises CheckpointError naming the keys. The decoder is smp-U-Net-like, not U-Net++
(models/decoder.py). The decoder's map head is dropped in stage 2, as in MENTOR.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.errors import CheckpointError, ConfigError
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy, masked, zero
from salience.methods.settings import Setting
from salience.models.base import Backbone, Classifier
from salience.models.decoder import MapPredictor

PREFIX = "backbone."


def _names(keys: list[str], limit: int = 5) -> str:
    more = f" … (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_encoder(backbone: nn.Module, state: dict[str, Tensor]) -> int:
    """Copy the `backbone.*` tensors of a stage-1 state dict into `backbone`; every tensor of the
    backbone must be present with the right shape (CheckpointError otherwise). Returns the count."""
    enc = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    want = backbone.state_dict()
    missing = sorted(set(want) - set(enc))
    unexpected = sorted(set(enc) - set(want))
    shapes = sorted(k for k in set(want) & set(enc) if tuple(want[k].shape) != tuple(enc[k].shape))
    if missing or unexpected or shapes:
        what = []
        if missing:
            what.append(f"{len(missing)} backbone tensor(s) missing: {_names(missing)}")
        if unexpected:
            what.append(f"{len(unexpected)} unexpected: {_names(unexpected)}")
        if shapes:
            what.append(f"{len(shapes)} with another shape: {_names(shapes)}")
        raise CheckpointError(
            "mentor: the pretrain checkpoint does not match this backbone ("
            + "; ".join(what)
            + "); was stage 'pretrain' run with the same backbone?"
        )
    backbone.load_state_dict(enc, strict=True)
    return len(enc)


@METHODS.register("mentor")
class Mentor(Method):
    label = "MENTOR"
    supported_backbones = (
        None  # all: same decoder as unet_gaze; encoder keys are ours on both sides
    )
    stages = ("pretrain", "train")
    #: K of the last model built (stage 1's constant scores have one column per class)
    num_classes: int = 2
    # Stage 1's published schedule (MENTOR's training notebook: Adam, lr 1e-4, 11 epochs, the
    # checkpoint with the best validation map loss); stage 2 uses the config's `train` block.
    # docs/decisions.md, "SAGE's baselines".
    settings: ClassVar[dict[str, Setting]] = {
        "pretrain_epochs": Setting(
            11, "integer", low=1, nullable=True, doc="stage-1 epochs; null = train.epochs"
        ),
        "pretrain_optimizer": Setting(
            "adam",
            "choice",
            choices=("adam", "sgd"),
            doc="adam (published) | sgd (train.momentum, StepLR)",
        ),
        "pretrain_lr": Setting(1.0e-4, "number", low=0, low_open=True, doc="stage-1 learning rate"),
        "pretrain_weight_decay": Setting(
            0.0, "number", low=0, doc="stage-1 weight decay (Adam's default; none is published)"
        ),
    }

    def _stage(self, stage: str) -> str:
        if stage not in self.stages:
            raise ConfigError(
                f"mentor: unknown stage {stage!r}; stages are {', '.join(self.stages)}"
            )
        return stage

    def build_model(
        self,
        backbone: Backbone,
        *,
        cam_layer: str = "pooled",
        stage: str = "train",
        num_classes: int = 2,
    ) -> nn.Module:
        self.num_classes = num_classes
        if self._stage(stage) == "pretrain":
            return MapPredictor(backbone)
        return Classifier(backbone, num_classes=num_classes, cam_layer=cam_layer)

    def init_stage(self, model: nn.Module, stage: str, previous: dict[str, Tensor] | None) -> None:
        if self._stage(stage) == "pretrain":
            return  # ImageNet (or random) init of the encoder, decoder from scratch
        if previous is None:
            raise CheckpointError(
                "mentor: stage 'train' needs the selected checkpoint of stage 'pretrain'"
            )
        load_encoder(model.backbone, previous)

    def selection(self, stage: str) -> tuple[str, str]:
        return ("val_loss", "min") if self._stage(stage) == "pretrain" else ("val_auroc", "max")

    def stage_epochs(self, stage: str, epochs: int) -> int:
        n = self.params["pretrain_epochs"]
        return n if self._stage(stage) == "pretrain" and n is not None else epochs

    def optimizer(self, stage: str, train: dict[str, Any]) -> dict[str, Any]:
        """Stage 1: `pretrain_optimizer` at `pretrain_lr` and `pretrain_weight_decay`; Adam keeps a
        constant rate (no schedule is published), SGD takes train.momentum and its StepLR.
        Stage 2: the config's `train` block (the papers' SGD)."""
        base = super().optimizer(stage, train)
        if self._stage(stage) != "pretrain":
            return base
        p = self.params
        base |= {"name": p["pretrain_optimizer"], "lr": p["pretrain_lr"]}
        base |= {"weight_decay": p["pretrain_weight_decay"]}
        return base | ({"lr_step": 1, "lr_gamma": 1.0} if p["pretrain_optimizer"] == "adam" else {})

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        if self._stage(stage) == "train":
            logits = model(batch["image"])
            ce = cross_entropy(logits, batch["label"])
            return LossOutput(total=ce, parts={"ce": ce}, logits=logits)
        pred = torch.sigmoid(model(batch["image"]))
        has = batch["has_map"].bool()
        if bool(has.any()):
            mse = F.mse_loss(
                masked(pred, has), masked(batch["map"].unsqueeze(1).to(pred.dtype), has)
            )
        else:
            mse = zero(pred)
        return LossOutput(total=mse, parts={"map_mse": mse}, logits=None)

    def logits(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        if isinstance(model, MapPredictor):
            # Stage 1 has no classifier: constant scores (AUROC 0.5); selection there is val_loss.
            x = batch["image"]
            return x.new_zeros(x.shape[0], self.num_classes)
        return model(batch["image"])
