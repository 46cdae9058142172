"""`smallcnn`: a CPU-sized network for the demo and the tests (a few ms per 48-px batch)."""

from __future__ import annotations

from torch import Tensor, nn

from salience.models.base import BACKBONES, Backbone
from salience.models.weights import load_weights


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=False)
    )


class SmallCNN(Backbone):
    """Four conv-BN-ReLU stages, max-pool between them: stride 8 (48 px → 6×6 CAM grid)."""

    stride = 8

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.widths = widths
        self.stages = nn.ModuleList()
        cin = 3
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.MaxPool2d(2)]
            layers.append(_block(cin, w))
            self.stages.append(nn.Sequential(*layers))
            cin = w
        self.num_features = widths[-1]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        # cyborg_legacy for this net: the last conv output before its BN and ReLU is not kept;
        # the post-ReLU tensor is both pooled and legacy (documented in docs/decisions.md).
        self.legacy_features = outs[-1]
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]

    def pyramid_channels(self) -> list[int]:
        return list(self.widths)


@BACKBONES.register("smallcnn")
def smallcnn(weights: str = "auto") -> SmallCNN:
    net = SmallCNN()
    load_weights(net, "smallcnn", weights, imagenet_file=None)
    return net
