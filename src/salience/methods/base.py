"""Method base class and registry (pytorch-grad-cam / timm pattern: one small module per method).

A method decides (a) which model it trains (`build_model`, default: `Classifier`), (b) its loss on a
training batch (`loss`), and (c) how the model scores an evaluation batch (`logits`). Methods with
two jobs (MENTOR) list `stages`; the training loop runs one stage per invocation, and the workflow
schedules each stage as its own job (`stage_inputs`). Evaluation and figures use only the contract
below (`forward_eval`/`cams`, `eval_notes`, `maps_at_test`, `cam_head`), never the model's
attributes.

A new method is one file in this package: a `Method` subclass decorated with
`@METHODS.register("name")` (which sets `cls.name`), with its display `label` and its `settings`
(`salience.methods.settings.Setting`: default, kind, range or choices; `defaults` is derived).
The registry, the method catalogue, config validation and every table that lists all methods pick
it up (tests/test_method_one_file.py); rerun `python -m salience methods --write-catalogue`.

A batch is a dict (see `salience.data.loader`):
  image   float32 B×3×S×S, ImageNet-normalised
  label   int64 B: the class index in [0, K) (binary: 1 = attack / synthetic / abnormal; K > 2:
          the order of the prepared meta.json "classes")
  map     float32 B×S×S human map at input resolution in [0, 1] (zeros where has_map is False;
          already 1 − h when the run uses flipped maps)
  map_cam float32 B×g×g the same map on the CAM grid (area mean pooling, then min-max)
  has_map bool B
  has_map_cam bool B: has_map, and the map is not constant on the CAM grid (use it with map_cam)
  row     int64 B (row index in the prepared dataset)
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from salience.cam import true_false_cams
from salience.errors import ConfigError, DataError
from salience.losses import multiclass
from salience.methods.settings import Setting, check_overrides
from salience.models.base import Backbone, Classifier
from salience.registry import Registry

log = logging.getLogger(__name__)
METHODS: Registry = Registry("method", required=("label",))


@dataclass
class LossOutput:
    """`total` is back-propagated; `parts` (already weighted) are logged per epoch."""

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)
    logits: Tensor | None = None  # clean-image logits, for the running train AUROC


class Method:
    """Base class. Subclasses set the class attributes and override `loss` (and maybe more)."""

    name: ClassVar[str] = ""
    #: display label, as the papers print it (tables, figures, the report)
    label: ClassVar[str] = ""
    #: declared settings (salience.methods.settings); config `methods.<name>` may override these only
    settings: ClassVar[dict[str, Setting]] = {}
    #: False for methods that never read the human map (xent, mentor stage 2 ...)
    uses_maps: ClassVar[bool] = True
    #: True when the model needs the map at evaluation time too (gazegnn)
    maps_at_test: ClassVar[bool] = False
    #: False when this method's model has no CAM head (`forward_all` + `cams`, as `Classifier`):
    #: then `cams` is None and evaluation scores with `logits` alone (gazegnn)
    cam_head: ClassVar[bool] = True
    #: set when the method trains its own network whatever the grid's backbone (gazegnn: "pvig");
    #: the grid then places one run per dataset/fold/seed, under study.HOME_BACKBONE or the first
    own_network: ClassVar[str | None] = None
    #: None = every registered backbone; else the names that work (others fail with a clear message)
    supported_backbones: ClassVar[tuple[str, ...] | None] = None
    #: why the unsupported backbones cannot serve (shown in the error)
    unsupported_reason: ClassVar[str] = ""
    #: training stages, in order; each is a separate job
    stages: ClassVar[tuple[str, ...]] = ("train",)
    #: the settings' defaults (derived from `settings` when the class is defined)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defaults = {k: s.default for k, s in cls.settings.items()}

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        params = dict(params or {})
        check_overrides(self.name, self.settings, params)
        self.params = {**self.defaults, **params}
        self.check_params()

    def check_params(self) -> None:
        """Constraints across settings, or beyond one setting's kind and range (e.g. GazeGNN's
        channels divisible by 4); raise a one-line ConfigError naming `methods.<name>.<key>`.
        Each setting alone has already been checked against its declaration."""

    # ----------------------------------------------------------------------------- hooks
    def check_backbone(self, backbone_name: str) -> None:
        if self.supported_backbones is not None and backbone_name not in self.supported_backbones:
            why = f" ({self.unsupported_reason})" if self.unsupported_reason else ""
            raise ConfigError(
                f"method {self.name!r} does not support backbone {backbone_name!r}{why}; "
                f"supported: {', '.join(self.supported_backbones)}"
            )

    def check_annotated(
        self, has_map: Sequence[bool], min_fraction: float, *, run: str, where: str, manifest: str
    ) -> None:
        """Before training: a method that trains on human maps needs annotated training rows
        (issue 10.3). `has_map` holds one flag per training row. None annotated → DataError (the
        run would be cross-entropy alone under this method's name); fewer than `min_fraction`
        (train.min_annotated_fraction, docs/decisions.md) → a logged warning."""
        if not self.uses_maps:
            return
        n, k = len(has_map), int(sum(bool(h) for h in has_map))
        if k == 0:
            raise DataError(
                f"{run}: method {self.name!r} trains on human saliency maps, but none of the {n} "
                f"train rows of {where} has one (prepared from {manifest}: empty saliency cells or "
                f"all-zero maps); fill the manifest's saliency column (`import cyborg --heatmaps` "
                f"matches maps by image stem) and prepare again, or train xent"
            )
        if k < min_fraction * n:
            log.warning(
                "%s: only %d of %d train rows (%.0f%%) have a human saliency map, fewer than "
                "train.min_annotated_fraction %g; %s trains the others on cross-entropy alone",
                run,
                k,
                n,
                100.0 * k / n,
                min_fraction,
                self.name,
            )

    def build_model(
        self,
        backbone: Backbone,
        *,
        cam_layer: str = "pooled",
        stage: str = "train",
        num_classes: int = 2,
    ) -> nn.Module:
        """The model this method trains in `stage` (default: backbone + GAP + linear), with
        `num_classes` outputs (K, the prepared dataset's classes)."""
        return Classifier(backbone, num_classes=num_classes, cam_layer=cam_layer)

    def build_own_model(
        self, weights: str = "auto", stage: str = "train", num_classes: int = 2
    ) -> nn.Module:
        """The model of a method with `own_network` (`weights` as model.weights), K outputs."""
        raise NotImplementedError

    def prepare_eval(self, has_map: np.ndarray, where: str) -> None:
        """Called before scoring a whole split (`has_map`: bool per row; `where` names the split)."""

    def init_stage(self, model: nn.Module, stage: str, previous: dict[str, Tensor] | None) -> None:
        """Called once before training `stage`, with the selected state dict of the previous stage."""

    def selection(self, stage: str) -> tuple[str, str]:
        """Model selection on validation: (metric, "max"|"min"). Never the test split."""
        return "val_auroc", "max"

    def stage_epochs(self, stage: str, epochs: int) -> int:
        """Epochs of `stage`; `epochs` is the config's train.epochs (the default for every stage)."""
        return epochs

    def optimizer(self, stage: str, train: dict[str, Any]) -> dict[str, Any]:
        """Optimiser of `stage` from the config's `train` block: {"name": "sgd" | "adam", "lr",
        "momentum" (sgd only), "weight_decay", "lr_step", "lr_gamma"} (StepLR, stepped per epoch).
        Default: the papers' SGD + StepLR for every stage (SAGE §4.2, DD §5.3)."""
        keys = ("lr", "momentum", "weight_decay", "lr_step", "lr_gamma")
        return {"name": "sgd", **{k: train[k] for k in keys}}

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        raise NotImplementedError

    def logits(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Evaluation scores: B×K logits (no grad is handled by the caller)."""
        return model(batch["image"])

    # ------------------------------------------------------- what evaluation and figures need
    def forward_eval(
        self, model: nn.Module, batch: dict[str, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """One evaluation pass over `batch` (needs "image" and "label"): B×K logits and the
        true- and false-class CAMs (each B×g×g on the model's CAM grid, unnormalised; DD §3), or
        None for the CAMs when this method's model has no CAM head (`cam_head`). K = 2: f =
        cam_{1−y}; K > 2: f = the CAM of the highest-scoring wrong class, the class the decision
        must beat (docs/decisions.md, "Multi-class Difference, Per-class and Contrast Salience")."""
        logits, cams = self.forward_eval_all(model, batch)
        if cams is None:
            return logits, None
        return logits, true_and_strongest(cams, logits, batch["label"])

    def forward_eval_all(
        self, model: nn.Module, batch: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None]:
        """The pass of `forward_eval` before its true/false split: B×K logits and the CAMs of all
        K classes (B×K×g×g on the model's CAM grid, unnormalised, from the same forward pass), or
        None for the CAMs without a CAM head. Figures of K > 2 models need every class's CAM
        (issue 12: true class vs its strongest competitor, class pairs); "label" is not read."""
        if not self.cam_head:
            return self.logits(model, batch), None
        out = model.forward_all(batch["image"])
        return out.logits, model.cams(out)

    def cams(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor] | None:
        """True- and false-class CAMs (B×g×g each) of `batch`, or None without a CAM head."""
        return self.forward_eval(model, batch)[1] if self.cam_head else None

    def eval_notes(self) -> dict[str, Any]:
        """Notes for the evaluation record (merged into metrics.json); default none."""
        return {}


def true_and_strongest(cams: Tensor, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(t, f), each B×g×g, from B×K×g×g CAMs: K = 2 is `salience.cam.true_false_cams` (f =
    cam_{1−y}); K > 2 takes f = the CAM of the highest-scoring wrong class
    (`salience.losses.multiclass`, `strongest`)."""
    if cams.shape[1] == 2:
        return true_false_cams(cams, labels)
    f = multiclass.false_class_cams(cams, logits, labels, "strongest").squeeze(1)
    return multiclass.true_cam(cams, labels), f


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels)


def build_method(name: str, params: dict[str, Any] | None = None) -> Method:
    """Instantiate a registered method with config overrides (unknown keys are a ConfigError)."""
    import_all()
    return METHODS.get(name)(params)


def method_class(name: str) -> type[Method]:
    import_all()
    return METHODS.get(name)


_IMPORTED = False


def import_all() -> None:
    """Import every module in `salience.methods` so their `@METHODS.register` decorators run."""
    global _IMPORTED
    if _IMPORTED:
        return
    import salience.methods as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"salience.methods.{mod.name}")
    _IMPORTED = True


def masked(t: Tensor, has_map: Tensor) -> Tensor:
    """Rows of `t` whose sample has a human map (saliency terms skip unannotated samples)."""
    return t[has_map] if not bool(has_map.all()) else t


def zero(like: Tensor) -> Tensor:
    return like.new_zeros(()) + 0.0 * like.sum()


__all__ = [
    "METHODS",
    "LossOutput",
    "Method",
    "build_method",
    "method_class",
    "import_all",
    "cross_entropy",
    "true_and_strongest",
    "masked",
    "zero",
]
