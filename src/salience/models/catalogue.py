"""Backbone names and their pinned ImageNet files, without importing torch.

The configuration layer (`salience.study`) checks a grid's backbones and `model.weights: imagenet`
against these tables, so planning a study never imports torch (docs/decisions.md, "torch-free
configuration layer"). `models.base.build_backbone` imports the module named here; a test keeps
`BACKBONE_MODULES` equal to the registry and `IMAGENET_URLS` equal to torchvision's own enums.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from salience.errors import ConfigError

# Which module registers each backbone. Config validation needs the names only, so a job on the
# small CPU net never pays torchvision's import (~1 s per job, hundreds of jobs per study).
BACKBONE_MODULES = {
    "smallcnn": "salience.models.small",
    **{
        n: "salience.models.torchvision_backbones"
        for n in ("resnet18", "resnet50", "densenet121", "efficientnet_b7", "swin_t")
    },
}

# The papers' ImageNet initialisation (`pretrained=True` in the CYBORG/SAGE code) = torchvision's
# IMAGENET1K_V1 file of each backbone. ResNet-50 must be V1: torchvision's DEFAULT is V2, another
# file (resnet50-11ad3fa6.pth) and another init. The file name carries the first hex digits of its
# sha256 (torch.hub's convention), which `weights fetch` verifies. smallcnn has no pretrained file.
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "densenet121": "https://download.pytorch.org/models/densenet121-a639ec97.pth",
    "efficientnet_b7": "https://download.pytorch.org/models/efficientnet_b7_lukemelas-c5b4e57e.pth",
    "swin_t": "https://download.pytorch.org/models/swin_t-704ceda3.pth",
}


def check_backbone_name(name: str) -> None:
    """Raise a one-line ConfigError (with a suggestion) when `name` is not a registered backbone."""
    if name not in BACKBONE_MODULES:
        from salience.registry import unknown

        raise unknown("backbone", name, BACKBONE_MODULES)


def imagenet_file(backbone: str) -> str | None:
    """File name of the pinned ImageNet weights of `backbone`, or None (no pretrained file)."""
    url = IMAGENET_URLS.get(backbone)
    return PurePosixPath(url).name if url else None


def no_imagenet_file(backbone: str) -> ConfigError:
    """The one-line error for `model.weights: imagenet` on a backbone without a pinned file."""
    return ConfigError(
        f"model.weights: imagenet: backbone {backbone} has no pretrained ImageNet file "
        f"(files exist for {', '.join(IMAGENET_URLS)}); use weights: none for it"
    )
