"""GazeGNN (Wang et al., "GazeGNN: A Gaze-Guided Graph Neural Network for Chest X-ray
Classification", WACV 2024; arXiv 2305.18221; ukaukaaaa/GazeGNN), a SAGE baseline (SAGE §4.2).

GazeGNN fuses gaze into the nodes of a Vision GNN once, additively:
`x = stem(img) + pos_embed + BatchNorm2d(1)(gaze)` (models/pvig_gaze.py), then ViG blocks run
max-relative graph convolutions over a k-NN graph of the fused nodes (reference-implementations.md §10).
Here, on the paper's backbones (SAGE Table 2) and in plain torch:
  nodes  = the backbone's pooled feature grid (g×g), projected to `node_dim` (1×1 conv + BN);
  fusion = nodes + Conv1×1(BatchNorm2d(1)(h)), h on the same grid (batch['map_cam']); the 1→D conv
           starts as all-ones weights, zero bias, i.e. GazeGNN's broadcast over channels;
  blocks = `gnn_layers` ViG Grapher blocks (fc → MRConv over the k nearest nodes in cosine distance of
           detached features, as ViG's dense_knn_matrix → fc, residual) each followed by an FFN;
  head   = mean over nodes → linear. No pos-embed (CNN features already encode position), no dilation.
Test-time maps: GazeGNN needs gaze at test time; test images have none here (SAGE never says what it
used). `test_maps: uniform` (default) feeds every evaluated image a constant map equal to the fusion
BN's running mean (the average training saliency), which the BN maps to its neutral point: no
spatial prior. Training rows without a map get the same constant. `provided` uses batch['map'] where
has_map is True. `eval_notes()` says which, for metrics.json.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.errors import ConfigError
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy
from salience.models.base import Backbone


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"methods.gazegnn.{key}: must be {expected}")


def _fc(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def knn(nodes: Tensor, k: int) -> Tensor:
    """B×D×N → B×N×k indices of each node's k nearest nodes (itself included), by cosine distance
    of detached features (no gradient through the graph, as in ViG)."""
    with torch.no_grad():
        f = F.normalize(nodes.detach().transpose(1, 2), dim=-1)  # B×N×D
        dist = -(f @ f.transpose(1, 2))
        return dist.topk(min(k, f.shape[1]), dim=-1, largest=False).indices


class Grapher(nn.Module):
    """ViG Grapher (fc → max-relative graph conv → fc, residual) + FFN (two 1×1 convs, residual)."""

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.fc1 = _fc(dim, dim)
        self.mr = nn.Sequential(nn.Conv2d(2 * dim, 2 * dim, 1), nn.BatchNorm2d(2 * dim), nn.GELU())
        self.fc2 = _fc(2 * dim, dim)
        self.ffn = nn.Sequential(_fc(dim, 4 * dim), nn.GELU(), _fc(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, d, gh, gw = x.shape
        y = self.fc1(x).flatten(2)  # B×D×N
        idx = knn(y, self.k)  # B×N×k
        nbr = torch.gather(
            y.unsqueeze(2).expand(-1, -1, idx.shape[1], -1),
            3,
            idx.unsqueeze(1).expand(-1, d, -1, -1),
        )  # B×D×N×k: nbr[b, :, i, j] = y[b, :, idx[b, i, j]]
        rel = (nbr - y.unsqueeze(-1)).amax(dim=-1)  # max-relative: max_j (x_j − x_i)
        g = self.mr(torch.cat([y, rel], dim=1).unsqueeze(-1))
        x = x + self.fc2(g).view(b, d, gh, gw)
        return x + self.ffn(x)


class GazeGNNClassifier(nn.Module):
    def __init__(
        self, backbone: Backbone, node_dim: int, k: int, layers: int, num_classes: int = 2
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = _fc(backbone.num_features, node_dim)
        self.map_bn = nn.BatchNorm2d(1)
        self.map_proj = nn.Conv2d(1, node_dim, 1)
        nn.init.ones_(self.map_proj.weight)
        nn.init.zeros_(self.map_proj.bias)
        self.blocks = nn.ModuleList(Grapher(node_dim, k) for _ in range(layers))
        self.fc = nn.Linear(node_dim, num_classes)

    def uniform_value(self) -> Tensor:
        return self.map_bn.running_mean.detach()[0]

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """`h`: B×g×g map on the node grid (resized by area if its grid differs); None = uniform."""
        feats = self.backbone(x)
        grid = tuple(feats.shape[-2:])
        if h is None:
            h = feats.new_full((feats.shape[0], 1, *grid), float(self.uniform_value()))
        else:
            h = h.unsqueeze(1).to(feats.dtype) if h.dim() == 3 else h.to(feats.dtype)
            if tuple(h.shape[-2:]) != grid:
                h = F.adaptive_avg_pool2d(h, grid)
        nodes = self.proj(feats) + self.map_proj(self.map_bn(h))
        for block in self.blocks:
            nodes = block(nodes)
        return self.fc(nodes.mean(dim=(2, 3)))


@METHODS.register("gazegnn")
class GazeGNN(Method):
    name = "gazegnn"
    supported_backbones = None  # all: nodes are the pooled feature grid of any backbone
    maps_at_test = True
    defaults: ClassVar[dict[str, Any]] = {
        "k": 9,  # neighbours per node (ViG's k = 9); capped at the number of nodes
        "gnn_layers": 2,  # Grapher+FFN blocks on top of the backbone
        "node_dim": 192,  # node feature width
        "test_maps": "uniform",  # | "provided": the test split's own maps where present
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        for key in ("k", "gnn_layers", "node_dim"):
            v = p[key]
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1, key, "an integer >= 1"
            )
        _check(p["test_maps"] in ("uniform", "provided"), "test_maps", "'uniform' or 'provided'")

    def eval_notes(self) -> dict[str, Any]:
        """What evaluation fed the model instead of human maps (recorded in metrics.json)."""
        return {"test_maps": self.params["test_maps"], "uniform_value": "fusion BN running mean"}

    def build_model(
        self, backbone: Backbone, *, cam_layer: str = "pooled", stage: str = "train"
    ) -> nn.Module:
        p = self.params
        return GazeGNNClassifier(backbone, p["node_dim"], p["k"], p["gnn_layers"])

    @staticmethod
    def _maps(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """batch['map_cam'] where has_map_cam, else the uniform constant."""
        h, has = batch["map_cam"], batch["has_map_cam"].bool()
        fill = h.new_full((), float(model.uniform_value()))
        return torch.where(has.view(-1, 1, 1), h, fill)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        logits = model(batch["image"], self._maps(model, batch))
        ce = cross_entropy(logits, batch["label"])
        return LossOutput(total=ce, parts={"ce": ce}, logits=logits)

    def logits(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        if self.params["test_maps"] == "uniform":
            return model(batch["image"], None)
        return model(batch["image"], self._maps(model, batch))
