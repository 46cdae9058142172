"""A U-Net decoder on any `Backbone.pyramid`, and the two models built on it.

Used by Unet+Gaze (Karargyris et al., Sci. Data 2021: smp `Unet` with an aux classification head)
and MENTOR stage 1 (Crum & Czajka, WACV 2025: smp `UnetPlusPlus`; its notebook notes plain `Unet`
was tried too). Instead of segmentation_models_pytorch (not a dependency, and its encoders differ
from our torchvision backbones) we follow smp's U-Net decoder (docs/reference-implementations.md §5, §8):
from the coarsest level, upsample (nearest) to the next finer level, concatenate it, two
conv3×3-BN-ReLU; one more block without skip at input resolution; a 3×3 conv gives 1-channel logits.
Widths halve per block and end at 16 (smp's (256, 128, 64, 32, 16) for a 5-level CNN pyramid),
each capped at the channel count of the skip it merges.
The final block always runs at input resolution, whatever the finest pyramid stride (2 for the
torchvision CNNs, 4 for Swin-T, 1 for smallcnn), so the decoder needs no dry forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salience.models.base import Backbone, Classifier

__all__ = ["UNetDecoder", "MapPredictor", "SegClassifier"]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Block(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv_bn_relu(cin + cskip, cout), _conv_bn_relu(cout, cout))

    def forward(self, x: Tensor, size: tuple[int, int], skip: Tensor | None) -> Tensor:
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNetDecoder(nn.Module):
    """pyramid (finest → coarsest, channels `in_channels`) → B×1×H×W map logits at `size`."""

    def __init__(self, in_channels: list[int]) -> None:
        super().__init__()
        n = len(in_channels)
        skips = list(reversed(in_channels[:-1])) + [0]  # coarse → fine skips, then none
        # smp's widths (e.g. n=5: 256, 128, 64, 32, 16), each capped at the channels of the skip it
        # merges, so a decoder never outweighs its encoder: unchanged for ResNet-50/DenseNet-121,
        # 3× cheaper on the demo's smallcnn, where smp's widths cost 25× the encoder (docs/decisions.md)
        widths = [16 * 2 ** (n - 1 - i) for i in range(n)]
        widths = [min(w, c) if c else w for w, c in zip(widths, skips, strict=True)]
        blocks, cin = [], in_channels[-1]
        for cskip, cout in zip(skips, widths, strict=True):
            blocks.append(_Block(cin, cskip, cout))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, pyramid: list[Tensor], size: tuple[int, int]) -> Tensor:
        x = pyramid[-1]
        skips = list(reversed(pyramid[:-1]))
        for i, block in enumerate(self.blocks):
            skip = skips[i] if i < len(skips) else None
            x = block(x, tuple(skip.shape[-2:]) if skip is not None else size, skip)
        return self.head(x)


class MapPredictor(nn.Module):
    """Backbone + U-Net decoder, no classifier (MENTOR stage 1). `forward(x)` → B×1×H×W logits.

    The encoder lives under `backbone.`, exactly as in `Classifier`, so stage 2 copies those keys."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = UNetDecoder(backbone.pyramid_channels())

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.backbone.pyramid(x), tuple(x.shape[-2:]))


class SegClassifier(Classifier):
    """Classifier (GAP + dropout + linear on the last pyramid level, smp's `aux_params` head) plus a
    U-Net decoder (Unet+Gaze). `forward(x)` → logits only; `forward_seg(x)` → (logits, map logits)
    from one backbone pass."""

    def __init__(self, backbone: Backbone, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__(backbone, num_classes=num_classes)
        self.dropout = nn.Dropout(dropout)
        self.decoder = UNetDecoder(backbone.pyramid_channels())

    def head(self, features: Tensor) -> Tensor:
        return self.fc(self.dropout(features.mean(dim=(2, 3))))

    def forward_seg(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pyr = self.backbone.pyramid(x)
        return self.head(pyr[-1]), self.decoder(pyr, tuple(x.shape[-2:]))
