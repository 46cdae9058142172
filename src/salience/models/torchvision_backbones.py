"""torchvision backbones: resnet18, resnet50, densenet121, efficientnet_b7, swin_t.

Each wraps the torchvision trunk under torchvision's own module names (so a torchvision state dict
loads after dropping the classifier) and meets the contract in `models/base.py`:
- `forward(x)`: the tensor the classifier pools, post-activation (docs/reference-implementations.md §12.1:
  ResNet `layer4` out, DenseNet `relu(features)`, EffNet `features` out post-SiLU, Swin-T post-`norm`
  permuted to B×C×H×W), computed as the last level of `pyramid(x)` in one pass;
- `pyramid(x)`: maps finest → coarsest for U-Net decoders (Unet+Gaze, MENTOR);
- `legacy_features`: the tensor the official CYBORG/MENTOR code hooks (§1.2, §2), for
  `cam_layer: cyborg_legacy`.

Weights are built with `weights=None` (never downloaded) and loaded by `load_weights` from torch's
hub cache under the file name of torchvision's IMAGENET1K_V1 URL (`catalogue.IMAGENET_URLS`): ResNet-50
must be V1, as in the papers (`pretrained=True`), not torchvision's DEFAULT V2 (§1.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn

from salience.models.base import BACKBONES, Backbone
from salience.models.catalogue import imagenet_file
from salience.models.weights import load_weights

StateDict = dict[str, Tensor]


def _drop_prefixes(*prefixes: str) -> Callable[[StateDict], StateDict]:
    """Remap: a full torchvision state dict minus its classifier (our head is `Classifier.fc`)."""

    def remap(state: StateDict) -> StateDict:
        return {k: v for k, v in state.items() if not k.startswith(prefixes)}

    return remap


# ----------------------------------------------------------------------------------------- ResNet
class ResNetBackbone(Backbone):
    """conv1-bn1-relu-maxpool-layer1..4; pyramid at strides 2, 4, 8, 16, 32."""

    def __init__(self, tv: tvm.ResNet) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(tv, name))
        last = self.layer4[-1]
        # CYBORG hooks layer4[-1].conv3 (pre-bn3, pre-residual, pre-ReLU; §1.2). BasicBlock
        # (resnet18) has no conv3: its last conv is conv2, same position in the block.
        # Registered once; a bound method, so deepcopy re-binds it to the copy. (Not stored as an
        # attribute: that would register the conv twice and duplicate its state-dict keys.)
        legacy_conv = last.conv3 if hasattr(last, "conv3") else last.conv2
        legacy_conv.register_forward_hook(self._keep_legacy)
        self._channels = [self.conv1.out_channels] + [
            _last_conv(getattr(self, f"layer{i}")).out_channels for i in range(1, 5)
        ]
        self.num_features = self._channels[-1]

    def _keep_legacy(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.legacy_features = output

    def pyramid(self, x: Tensor) -> list[Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        outs = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]

    def pyramid_channels(self) -> list[int]:
        return list(self._channels)


def _last_conv(module: nn.Module) -> nn.Conv2d:
    """Last Conv2d in registration order (= the block's output conv for ResNet/MBConv stages)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1]


# --------------------------------------------------------------------------------------- DenseNet
# Old checkpoints (the IMAGENET1K_V1 file included) name dense-layer modules `norm.1`, `conv.2` ...;
# torchvision's densenet._load_state_dict renames them with this pattern.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _densenet_remap(state: StateDict) -> StateDict:
    out = {}
    for k, v in state.items():
        if k.startswith("classifier."):
            continue
        m = _DENSENET_OLD_KEY.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


class DenseNetBackbone(Backbone):
    """`features` (conv0 … denseblock4, norm5), then ReLU; pyramid like smp's DenseNet encoder:
    relu0 (s2) and each transition's post-ReLU tensor (s4, s8, s16, taken before its conv and
    pool), then relu(norm5) (s32)."""

    def __init__(self, tv: tvm.DenseNet) -> None:
        super().__init__()
        self.features = tv.features
        f = self.features
        self._channels = [
            f.conv0.out_channels,
            f.transition1.norm.num_features,
            f.transition2.norm.num_features,
            f.transition3.norm.num_features,
            f.norm5.num_features,
        ]
        self.num_features = self._channels[-1]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for name, mod in self.features.named_children():
            if name.startswith("transition"):
                x = mod.relu(mod.norm(x))
                outs.append(x)
                x = mod.pool(mod.conv(x))
            else:
                x = mod(x)
                if name == "relu0":
                    outs.append(x)
        # x = features(x) = norm5 output, pre-ReLU: what CYBORG's second pass returns (§1.2). We
        # keep it from this single pass; the ReLU must not be in-place (torchvision's is).
        self.legacy_features = x
        outs.append(F.relu(x))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]

    def pyramid_channels(self) -> list[int]:
        return list(self._channels)


# ----------------------------------------------------------------------------------- EfficientNet
class EfficientNetBackbone(Backbone):
    """`features` (stem, 7 MBConv stages, 1×1 head conv-BN-SiLU); pyramid = the last output at
    each resolution (strides 2, 4, 8, 16, 32), found from the conv strides, not hard-coded."""

    def __init__(self, tv: tvm.EfficientNet) -> None:
        super().__init__()
        self.features = tv.features
        strides = [_stage_stride(m) for m in self.features]
        # keep stage i when the next stage downsamples (or i is the last stage)
        self._levels = [
            i for i in range(len(strides)) if i == len(strides) - 1 or strides[i + 1] > 1
        ]
        self._channels = [_last_conv(self.features[i]).out_channels for i in self._levels]
        self.num_features = self._channels[-1]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        last = len(self.features) - 1
        for i, mod in enumerate(self.features):
            if i == last:
                # features[-1] = Conv2dNormActivation(conv, BN, SiLU); MENTOR's CAM hook is on
                # features[-1][0], the 1×1 conv before BN+SiLU (§2). Run it step by step to keep it.
                conv, *rest = mod
                x = conv(x)
                self.legacy_features = x
                for m in rest:
                    x = m(x)
            else:
                x = mod(x)
            if i in self._levels:
                outs.append(x)
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]

    def pyramid_channels(self) -> list[int]:
        return list(self._channels)


def _stage_stride(module: nn.Module) -> int:
    s = 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            s *= m.stride[0]
    return s


# ------------------------------------------------------------------------------------------ Swin-T
class SwinBackbone(Backbone):
    """`features` (patch embed + 4 stages with patch merging), then `norm`; the pyramid is the four
    stage outputs (strides 4, 8, 16, 32), the last after `norm`, all permuted B×H×W×C → B×C×H×W.
    No CYBORG legacy layer exists for Swin-T: `legacy_features` stays None."""

    def __init__(self, tv: tvm.SwinTransformer) -> None:
        super().__init__()
        self.features = tv.features
        self.norm = tv.norm
        # features = [embed, stage1, merge, stage2, merge, stage3, merge, stage4]
        self._levels = [i for i in range(len(self.features)) if i % 2 == 1]
        self._channels = [self.features[i][-1].norm1.normalized_shape[0] for i in self._levels]
        self.num_features = self._channels[-1]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        last = len(self.features) - 1
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in self._levels:
                y = self.norm(x) if i == last else x
                outs.append(y.permute(0, 3, 1, 2))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]

    def pyramid_channels(self) -> list[int]:
        return list(self._channels)


# ---------------------------------------------------------------------------------------- registry
@BACKBONES.register("resnet18")
def resnet18(weights: str = "auto") -> ResNetBackbone:
    net = ResNetBackbone(tvm.resnet18(weights=None))
    load_weights(net, "resnet18", weights, imagenet_file("resnet18"), remap=_drop_prefixes("fc."))
    return net


@BACKBONES.register("resnet50")
def resnet50(weights: str = "auto") -> ResNetBackbone:
    net = ResNetBackbone(tvm.resnet50(weights=None))
    load_weights(net, "resnet50", weights, imagenet_file("resnet50"), remap=_drop_prefixes("fc."))
    return net


@BACKBONES.register("densenet121")
def densenet121(weights: str = "auto") -> DenseNetBackbone:
    net = DenseNetBackbone(tvm.densenet121(weights=None))
    load_weights(net, "densenet121", weights, imagenet_file("densenet121"), remap=_densenet_remap)
    return net


@BACKBONES.register("efficientnet_b7")
def efficientnet_b7(weights: str = "auto") -> EfficientNetBackbone:
    # torchvision's classifier (dropout + Linear) is dropped: MENTOR replaces it by a bare Linear
    # too (§2), which is our Classifier.fc.
    net = EfficientNetBackbone(tvm.efficientnet_b7(weights=None))
    load_weights(
        net,
        "efficientnet_b7",
        weights,
        imagenet_file("efficientnet_b7"),
        remap=_drop_prefixes("classifier."),
    )
    return net


@BACKBONES.register("swin_t")
def swin_t(weights: str = "auto") -> SwinBackbone:
    net = SwinBackbone(tvm.swin_t(weights=None))
    load_weights(net, "swin_t", weights, imagenet_file("swin_t"), remap=_drop_prefixes("head."))
    return net


__all__ = [
    "DenseNetBackbone",
    "EfficientNetBackbone",
    "ResNetBackbone",
    "SwinBackbone",
    "densenet121",
    "efficientnet_b7",
    "resnet18",
    "resnet50",
    "swin_t",
]
