"""GazeGNN (Wang et al., "GazeGNN: A Gaze-Guided Graph Neural Network for Chest X-ray
Classification", WACV 2024; arXiv 2305.18221; ukaukaaaa/GazeGNN), a SAGE baseline (SAGE §4.2).

GazeGNN is a Pyramid Vision GNN (models/pvig.py, Ti sizes by default) whose stem nodes get the gaze
map added once, through a one-channel BatchNorm broadcast over the channels:
  nodes = stem(x) + pos_embed + BatchNorm2d(1)(g),
where g is the map on the stride-4 node grid: per node the sum of the map over a 14×14-pixel window
centred on the node (GazeGNN's getPatchGaze: 56×56 from 224 px), then per-image min-max (a constant
map is left as it is). The head is ViG's: global average pool → 1×1 conv to 1024 → BN → GELU →
dropout → 1×1 conv to K classes (2 for SAGE's binary tasks; GazeGNN's own data has 3). GazeGNN reads the map at test time too.

It brings its own network: the grid's backbone only places the run (`own_network`, docs/decisions.md
"gazegnn"). `model.weights: auto` loads the published ImageNet Pyramid ViG file from torch's hub
cache when present (as GazeGNN fine-tunes `pvig_ti_78.5.pth.tar`), else random init.

Maps at evaluation (`test_maps`): `auto` (default) feeds every evaluated image its own map when every
row of the evaluated split has one, else a constant map (below) for the whole split, with a
warning; `provided` refuses a split with unannotated rows; `uniform` always feeds the constant map.
The constant map equals the fusion BN's running mean, which the BN sends to its neutral point (no
spatial prior); training rows without a map get it too. metrics.json records what was fed.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.errors import ConfigError, DataError
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy
from salience.methods.settings import Setting
from salience.models.base import Backbone
from salience.models.pvig import PVIG_FILES, PVIG_SIZES, PyramidViG, official_state

log = logging.getLogger(__name__)

TEST_MAPS = ("auto", "provided", "uniform")
HEAD_DIM = 1024  # ViG's head width (emb_dims)
WINDOW = 14  # GazeGNN's gaze window per node, in pixels (±7 around the node centre, stride 4)


def node_gaze(maps: Tensor, grid: int) -> Tensor:
    """B×S×S maps in [0, 1] → B×grid×grid: per node (stride 4) the sum over a 14×14-pixel window
    centred on it, clipped to the image, then per-image min-max (constant maps are kept as they are).
    GazeGNN's getPatchGaze (read_data.py) at any size."""
    half = WINDOW // 2
    m = F.pad(maps.unsqueeze(1).float(), (half, half, half, half))
    s = F.avg_pool2d(m, WINDOW, 4)[:, 0, :grid, :grid] * (WINDOW * WINDOW)
    lo = s.amin(dim=(1, 2), keepdim=True)
    span = s.amax(dim=(1, 2), keepdim=True) - lo
    return torch.where(span > 0, (s - lo) / span.clamp_min(1e-12), s)


class GazeGNNNet(nn.Module):
    """Pyramid ViG + GazeGNN's gaze fusion + ViG's classifier head. `forward(x, gaze)` → B×K logits,
    `gaze` B×g×g on the node grid (`node_gaze`), or None = the constant map (running mean)."""

    def __init__(
        self,
        backbone: PyramidViG,
        num_classes: int = 2,
        dropout: float = 0.0,
        head: dict[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.b1 = nn.BatchNorm2d(1)  # GazeGNN's name for the fusion BN
        c = backbone.num_features
        self.prediction = nn.Sequential(
            nn.Conv2d(c, HEAD_DIM, 1),
            nn.BatchNorm2d(HEAD_DIM),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv2d(HEAD_DIM, num_classes, 1),
        )
        for m in self.prediction:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        if head:  # the published head minus its 1000-class conv (GazeGNN replaces that one)
            keep = {
                k[len("prediction.") :]: v
                for k, v in head.items()
                if not k.startswith("prediction.4.")
            }
            self.prediction.load_state_dict(keep, strict=False)

    def uniform_value(self) -> Tensor:
        return self.b1.running_mean.detach()[0]

    def forward(self, x: Tensor, gaze: Tensor | None = None) -> Tensor:
        grid = self.backbone.node_grid(x.shape[-1])
        if gaze is None:
            gaze = x.new_full((x.shape[0], grid, grid), float(self.uniform_value()))
        feats = self.backbone(x, self.b1(gaze.unsqueeze(1).to(x.dtype)))
        return self.prediction(feats.mean(dim=(2, 3), keepdim=True)).flatten(1)


@METHODS.register("gazegnn")
class GazeGNN(Method):
    label = "Gaze-GNN"
    supported_backbones = None  # any grid backbone places the run; the network is its own
    own_network = "pvig"
    maps_at_test = True
    cam_head = False  # ViG's head pools before its classifier: no class activation maps
    settings: ClassVar[dict[str, Setting]] = {
        "k": Setting(9, "integer", low=1, doc="neighbours per node (ViG)"),
        "channels": Setting(
            [48, 96, 240, 384],
            "list",
            item=Setting(1, "integer", low=1),
            length=4,
            doc="channels per stage (Pyramid ViG-Ti, pvig_ti_224_gelu); multiples of 4",
        ),
        "blocks": Setting(
            [2, 2, 6, 2],
            "list",
            item=Setting(1, "integer", low=1),
            length=4,
            doc="blocks per stage",
        ),
        "dropout": Setting(
            0.0, "number", low=0, high=1, high_open=True, doc="head dropout (ViG's opt.dropout)"
        ),
        "test_maps": Setting(
            "auto",
            "choice",
            choices=TEST_MAPS,
            doc="maps fed at evaluation: auto | provided (required) | uniform (constant map)",
        ),
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._eval_maps: str | None = None  # set per evaluated split by prepare_eval

    def check_params(self) -> None:
        p = self.params
        if not all(c % 4 == 0 for c in p["channels"]):
            raise ConfigError(
                "methods.gazegnn.channels: must be multiples of 4 (grouped graph convolution, "
                f"2-D sin-cos positions), got {p['channels']!r}"
            )
        p["k"] = int(p["k"])
        p["channels"] = [int(c) for c in p["channels"]]
        p["blocks"] = [int(b) for b in p["blocks"]]

    def size_name(self) -> str | None:
        """'ti', 's', 'm' or 'b' when channels/blocks are a published Pyramid ViG size."""
        shape = (tuple(self.params["channels"]), tuple(self.params["blocks"]))
        return next((n for n, s in PVIG_SIZES.items() if s == shape), None)

    def build_own_model(
        self, weights: str = "auto", stage: str = "train", num_classes: int = 2
    ) -> nn.Module:
        """The whole GazeGNN network with K = `num_classes` outputs; `weights` as model.weights
        (auto / none / a state-dict path)."""
        from salience.models.weights import load_weights

        p = self.params
        net = PyramidViG(p["channels"], p["blocks"], p["k"])
        size = self.size_name()
        head: dict[str, Tensor] = {}

        def remap(state: dict[str, Tensor]) -> dict[str, Tensor]:
            trunk, extra = official_state(state)
            head.update(extra)
            return trunk

        name = f"pvig_{size}" if size else "pvig (custom sizes)"
        load_weights(net, name, weights, PVIG_FILES.get(size or ""), remap=remap)
        return GazeGNNNet(net, num_classes, dropout=float(p["dropout"]), head=head)

    def build_model(
        self,
        backbone: Backbone,
        *,
        cam_layer: str = "pooled",
        stage: str = "train",
        num_classes: int = 2,
    ) -> nn.Module:
        """GazeGNN on `backbone` when it is a Pyramid ViG; any other backbone is ignored and the
        configured Pyramid ViG is built (random init): GazeGNN brings its own network."""
        if not isinstance(backbone, PyramidViG):
            return self.build_own_model("none", stage, num_classes)
        return GazeGNNNet(backbone, num_classes, dropout=float(self.params["dropout"]))

    # ------------------------------------------------------------------------- maps
    @staticmethod
    def _node_maps(model: GazeGNNNet, batch: dict[str, Tensor], use_maps: bool) -> Tensor:
        """The batch's maps on the node grid; rows without a map (or all, if not use_maps) get the
        constant map."""
        grid = model.backbone.node_grid(batch["image"].shape[-1])
        g = node_gaze(batch["map"], grid)
        fill = g.new_full((), float(model.uniform_value()))
        has = batch["has_map"].bool() if use_maps else torch.zeros_like(batch["has_map"].bool())
        return torch.where(has.view(-1, 1, 1), g, fill)

    def prepare_eval(self, has_map: np.ndarray, where: str) -> None:
        """Decide, for one evaluated split, whether its maps are fed (see the module docstring)."""
        mode, missing = self.params["test_maps"], int((~np.asarray(has_map, bool)).sum())
        if mode == "provided" and missing:
            raise DataError(
                f"{where}: {missing} of {len(has_map)} rows have no saliency map; "
                "methods.gazegnn.test_maps: provided needs one per row (use auto or uniform)"
            )
        if mode == "auto" and missing:
            log.warning(
                "%s: %d of %d rows have no saliency map; GazeGNN gets a constant map for every row",
                where,
                missing,
                len(has_map),
            )
        self._eval_maps = "uniform" if mode == "uniform" or missing else "provided"

    def eval_notes(self) -> dict[str, Any]:
        """What evaluation fed the model as maps (recorded in metrics.json)."""
        return {"test_maps": self._eval_maps or "per batch"}

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        logits = model(batch["image"], self._node_maps(model, batch, True))
        ce = cross_entropy(logits, batch["label"])
        return LossOutput(total=ce, parts={"ce": ce}, logits=logits)

    def logits(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        mode = self._eval_maps
        if mode is None:  # no split-level decision: this batch's maps if all rows have one
            full = self.params["test_maps"] != "uniform" and bool(batch["has_map"].all())
            mode = "provided" if full else "uniform"
        return model(batch["image"], self._node_maps(model, batch, mode == "provided"))
