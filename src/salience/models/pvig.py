"""Pyramid Vision GNN (Han et al., "Vision GNN: An Image is Worth Graph of Nodes", NeurIPS 2022,
§3.3 and Table 2; huawei-noah/Efficient-AI-Backbones vig_pytorch/pyramid_vig.py), in plain torch.

The network GazeGNN (Wang et al., WACV 2024) is built on; `salience.methods.gazegnn` adds the gaze.
Every image is a graph of patch nodes on a 4-stage pyramid (strides 4, 8, 16, 32):
  stem       3×3 conv s2 (C/2) → BN → GELU → 3×3 conv s2 (C) → BN → GELU → 3×3 conv s1 (C) → BN,
             plus a learned position embedding (zeros at start, 56×56 for 224 px input);
  stage i    (a 3×3 conv s2 + BN downsample before stages 2–4) `blocks[i]` blocks, each
             Grapher (1×1 conv+BN → max-relative graph conv → 1×1 conv+BN, residual) then
             FFN (1×1 conv+BN → GELU → 1×1 conv+BN, hidden 4C, residual);
  graph      each node's k nearest neighbours among the keys (the nodes average-pooled by the
             stage's reduce ratio 4, 2, 1, 1), in squared L2 distance of the L2-normalised detached
             features minus a fixed 2-D sin-cos relative-position term; dilated: the k·d nearest,
             every d-th kept, d = min(block//4 + 1, 49 // k) over the 12 blocks;
  MRConv     [x_i, max_j (y_j − x_i)] (channels interleaved) → grouped (4) 1×1 conv to 2C → BN → GELU.
Sizes (Pyramid ViG-Ti, `pvig_ti_224_gelu`): channels (48, 96, 240, 384), blocks (2, 2, 6, 2), k = 9.

Small images (the generated benchmark, 32–64 px; docs/decisions.md, "gazegnn"): the position
embedding is resized bicubically to the node grid, the relative-position term is computed for the
actual grid, and k (then d) is capped so that k·d never exceeds the number of keys. At 224 px
none of these changes anything.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.models.base import Backbone

#: published Pyramid ViG sizes (Han et al. Table 2): channels, blocks; and their ImageNet files
PVIG_SIZES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "ti": ((48, 96, 240, 384), (2, 2, 6, 2)),
    "s": ((80, 160, 400, 640), (2, 2, 6, 2)),
    "m": ((96, 192, 384, 768), (2, 2, 16, 2)),
    "b": ((128, 256, 512, 1024), (2, 2, 18, 2)),
}
PVIG_FILES = {
    "ti": "pvig_ti_78.5.pth.tar",
    "s": "pvig_s_82.1.pth.tar",
    "m": "pvig_m_83.1.pth.tar",
    "b": "pvig_b_83.66.pth.tar",
}
REDUCE_RATIOS = (4, 2, 1, 1)  # keys of stage i are the nodes average-pooled by this factor
NATIVE_GRID = 56  # node grid of the published 224 px models (sizes the position embedding)


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> list:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups), nn.BatchNorm2d(cout)]


@functools.lru_cache(maxsize=32)
def _relative_pos(dim: int, h: int, w: int, hk: int, wk: int) -> Tensor:
    """N×Nk position term added to the kNN distance: −2·⟨p_i, p_j⟩/dim of 2-D sin-cos embeddings
    (MAE's, half the channels per axis), N = h·w nodes; for pooled keys (Nk = hk·wk < N) the N×N
    matrix is resized bicubically to N×Nk, as the reference implementation does."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )

    def axis(pos: Tensor) -> Tensor:
        out = pos.reshape(-1, 1) * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([axis(cols), axis(rows)], dim=1)  # N×(4·quarter)
    rel = (2.0 * emb @ emb.T / (4 * quarter)).float()
    if hk * wk != h * w:
        rel = F.interpolate(rel[None, None], size=(h * w, hk * wk), mode="bicubic")[0, 0]
    return -rel


def knn_graph(x: Tensor, y: Tensor, k: int, dilation: int, rel: Tensor | None) -> Tensor:
    """B×C×N nodes, B×C×Nk keys → B×N×k indices into the keys: the k·dilation nearest keys in
    squared L2 distance of L2-normalised detached features (+ `rel`, N×Nk), every dilation-th kept.
    No gradient flows through the graph (ViG's dense_knn_matrix)."""
    with torch.no_grad():
        xn = F.normalize(x.detach(), dim=1).transpose(1, 2)  # B×N×C
        yn = F.normalize(y.detach(), dim=1).transpose(1, 2)  # B×Nk×C
        dist = (
            xn.pow(2).sum(-1, keepdim=True)
            - 2 * xn @ yn.transpose(1, 2)
            + yn.pow(2).sum(-1).unsqueeze(1)
        )
        if rel is not None:
            dist = dist + rel
        idx = dist.topk(k * dilation, dim=-1, largest=False).indices
    return idx[:, :, ::dilation]


def max_relative(x: Tensor, y: Tensor, idx: Tensor) -> Tensor:
    """Max-relative aggregation (Li et al., DeepGCNs, 2019): B×C×N nodes x, B×C×Nk keys y, B×N×k
    neighbour indices → B×C×N with out[b, c, i] = max_j (y[b, c, idx[b, i, j]] − x[b, c, i])."""
    b, c, n = x.shape
    k = idx.shape[-1]
    nbr = torch.gather(y, 2, idx.reshape(b, 1, n * k).expand(b, c, n * k)).view(b, c, n, k)
    return (nbr - x.unsqueeze(-1)).amax(dim=-1)


class MRConv(nn.Module):
    """Max-relative graph convolution: [x_i, max_j(y_j − x_i)] interleaved per channel, then a
    grouped (4) 1×1 conv C·2 → `cout`, BN, GELU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.nn = nn.Sequential(*_conv_bn(2 * cin, cout, groups=4), nn.GELU())

    def forward(self, x: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        """x: B×C×N, y: B×C×Nk, idx: B×N×k → B×cout×N."""
        rel = max_relative(x, y, idx)
        b, c, n = x.shape
        both = torch.stack([x, rel], dim=2).reshape(b, 2 * c, n, 1)  # x_0, r_0, x_1, r_1, ...
        return self.nn(both).squeeze(-1)


class Grapher(nn.Module):
    """ViG Grapher: fc1 → dynamic dilated kNN graph + MRConv (C → 2C) → fc2 (2C → C), residual."""

    def __init__(self, dim: int, k: int, dilation: int, reduce: int) -> None:
        super().__init__()
        self.dim, self.k, self.dilation, self.reduce = dim, k, dilation, reduce
        self.fc1 = nn.Sequential(*_conv_bn(dim, dim))
        self.graph_conv = MRConv(dim, 2 * dim)
        self.fc2 = nn.Sequential(*_conv_bn(2 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        z = self.fc1(x)
        keys = F.avg_pool2d(z, self.reduce, self.reduce) if self.reduce > 1 else z
        hk, wk = keys.shape[-2:]
        nk = hk * wk
        k = min(self.k, nk)  # small images: never more neighbours than keys
        d = max(1, min(self.dilation, nk // k))
        rel = _relative_pos(c, h, w, hk, wk).to(z)
        zf, yf = z.flatten(2), keys.flatten(2)
        idx = knn_graph(zf, yf, k, d, rel)
        g = self.graph_conv(zf, yf, idx).view(b, 2 * c, h, w)
        return x + self.fc2(g)


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(*_conv_bn(dim, hidden))
        self.act = nn.GELU()
        self.fc2 = nn.Sequential(*_conv_bn(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(self.act(self.fc1(x)))


class PyramidViG(Backbone):
    """Pyramid ViG trunk (no classifier). `forward(x, node_bias)` → B×C₄×⌈S/32⌉×⌈S/32⌉ features;
    `node_bias` (B×1|C₁×⌈S/4⌉×⌈S/4⌉) is added to the stem's nodes with the position embedding,
    where GazeGNN adds its gaze map. Input: B×3×S×S, ImageNet-normalised."""

    stride = 32

    def __init__(self, channels: Sequence[int], blocks: Sequence[int], k: int = 9) -> None:
        super().__init__()
        if len(channels) != 4 or len(blocks) != 4:
            raise ValueError("Pyramid ViG has 4 stages: give 4 channels and 4 block counts")
        self.channels, self.blocks_per_stage, self.k = tuple(channels), tuple(blocks), k
        c0 = channels[0]
        self.stem = nn.Sequential(
            *_conv_bn(3, c0 // 2, 3, 2),
            nn.GELU(),
            *_conv_bn(c0 // 2, c0, 3, 2),
            nn.GELU(),
            *_conv_bn(c0, c0, 3, 1),
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, c0, NATIVE_GRID, NATIVE_GRID))
        max_dilation = 49 // k  # the reference's cap (49 nodes in the last stage at 224 px)
        layers: list[nn.Module] = []
        self._stage_ends: list[int] = []
        idx = 0
        for i, (dim, n) in enumerate(zip(channels, blocks)):
            if i > 0:
                layers.append(nn.Sequential(*_conv_bn(channels[i - 1], dim, 3, 2)))
            for _ in range(n):
                d = min(idx // 4 + 1, max_dilation)
                layers.append(
                    nn.Sequential(Grapher(dim, k, d, REDUCE_RATIOS[i]), FFN(dim, 4 * dim))
                )
                idx += 1
            self._stage_ends.append(len(layers) - 1)
        self.blocks = nn.Sequential(*layers)
        self.num_features = channels[-1]
        for m in self.modules():  # the reference's model_init: Kaiming-normal convs, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def node_grid(self, image_size: int) -> int:
        """Side of the stem's node grid for `image_size` px (two stride-2 convs: ⌈⌈S/2⌉/2⌉)."""
        return math.ceil(math.ceil(image_size / 2) / 2)

    def embed(self, x: Tensor, node_bias: Tensor | None = None) -> Tensor:
        z = self.stem(x)
        pos = self.pos_embed
        if pos.shape[-2:] != z.shape[-2:]:
            pos = F.interpolate(pos, size=z.shape[-2:], mode="bicubic")
        z = z + pos
        return z if node_bias is None else z + node_bias

    def pyramid(self, x: Tensor, node_bias: Tensor | None = None) -> list[Tensor]:
        """The four stage outputs (strides 4, 8, 16, 32), finest → coarsest."""
        z, out = self.embed(x, node_bias), []
        for i, layer in enumerate(self.blocks):
            z = layer(z)
            if i in self._stage_ends:
                out.append(z)
        return out

    def forward(self, x: Tensor, node_bias: Tensor | None = None) -> Tensor:
        return self.blocks(self.embed(x, node_bias))

    def pyramid_channels(self) -> list[int]:
        return list(self.channels)


def official_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split a published Pyramid ViG state dict (Efficient-AI-Backbones' key names) into
    (trunk state for `PyramidViG`, classifier-head tensors `prediction.*`). The fixed
    `relative_pos` tensors are dropped: `PyramidViG` computes them for the actual node grid."""
    trunk, head = {}, {}
    for key, value in state.items():
        if key.endswith(".relative_pos"):
            continue
        if key.startswith("prediction."):
            head[key] = value
            continue
        key = key.replace("stem.convs.", "stem.", 1).replace("backbone.", "blocks.", 1)
        key = re.sub(r"^(blocks\.\d+)\.conv\.", r"\1.", key)  # Downsample's inner Sequential
        trunk[key.replace(".graph_conv.gconv.nn.", ".graph_conv.nn.")] = value
    return trunk, head
