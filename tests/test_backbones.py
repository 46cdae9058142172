"""Backbone contract (models/base.py) for every registered backbone, and offline weight loading.

Small inputs (64 px, batch 2), one thread. Weight files are written under a temporary TORCH_HOME;
any download attempt fails the test.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import pickle
import re
import shlex
import urllib.request
from pathlib import Path

import salience  # noqa: F401  - installs the torchvision shim before torchvision is imported

# isort: split
import pytest
import torch
import torchvision.models as tvm
from _support import empty_hub
from torch import nn

from salience.cam import true_false_cams
from salience.errors import CheckpointError, ConfigError
from salience.losses import cam_terms
from salience.models import torchvision_backbones as tvb
from salience.models.base import BACKBONES, Classifier, _import_all, build_backbone

torch.set_num_threads(1)
_import_all()
NAMES = BACKBONES.names()
SIZE = 64

# name -> (torchvision builder, our wrapper class, torchvision head, expected IMAGENET1K_V1 file)
TV = {
    "resnet18": (tvm.resnet18, tvb.ResNetBackbone, "fc", "resnet18-f37072fd.pth"),
    "resnet50": (tvm.resnet50, tvb.ResNetBackbone, "fc", "resnet50-0676ba61.pth"),
    "densenet121": (
        tvm.densenet121,
        tvb.DenseNetBackbone,
        "classifier",
        "densenet121-a639ec97.pth",
    ),
    "efficientnet_b7": (
        tvm.efficientnet_b7,
        tvb.EfficientNetBackbone,
        "classifier.1",
        "efficientnet_b7_lukemelas-c5b4e57e.pth",
    ),
    "swin_t": (tvm.swin_t, tvb.SwinBackbone, "head", "swin_t-704ceda3.pth"),
}


@functools.cache
def _backbone(name: str):
    torch.manual_seed(0)
    return build_backbone(name, weights="none")


def _x(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


def test_registry_lists_the_torchvision_backbones():
    assert set(TV) <= set(NAMES)


# ------------------------------------------------------------------------------ contract, per name
@pytest.mark.parametrize("name", NAMES)
def test_forward_all_shapes(name):
    bb = _backbone(name).eval()
    clf = Classifier(bb, num_classes=2)
    with torch.no_grad():
        out = clf.forward_all(_x())
    g = SIZE // bb.stride
    assert out.logits.shape == (2, 2)
    assert out.features.shape == (2, bb.num_features, g, g)
    assert out.cam_features is out.features
    assert out.embedding.shape == (2, bb.num_features)
    assert clf.cams(out).shape == (2, 2, g, g)
    assert bb.weights_origin == "random"


@pytest.mark.parametrize("name", NAMES)
def test_pyramid_levels(name):
    bb = _backbone(name).eval()  # eval: stochastic depth would make two passes differ
    x = _x()
    with torch.no_grad():
        pyr = bb.pyramid(x)
        feats = bb(x)
    assert [p.shape[1] for p in pyr] == bb.pyramid_channels()
    assert torch.equal(pyr[-1], feats)
    sides = [p.shape[-1] for p in pyr]
    assert sides[-1] == SIZE // bb.stride
    assert all(a == 2 * b for a, b in zip(sides, sides[1:])), sides  # each level halves
    assert all(p.shape[-2] == p.shape[-1] for p in pyr)


@pytest.mark.parametrize("name", NAMES)
def test_cam_identity_under_pooled(name):
    """GAP(cam_k) + b_k == logit_k (docs/reference-implementations.md §12.1)."""
    bb = _backbone(name).eval()
    clf = Classifier(bb, num_classes=2, cam_layer="pooled")
    with torch.no_grad():
        out = clf.forward_all(_x())
        cams = clf.cams(out)
    torch.testing.assert_close(
        cams.mean(dim=(2, 3)) + clf.fc.bias, out.logits, atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("name", NAMES)
def test_cam_loss_gradient_reaches_first_conv(name):
    bb = _backbone(name).train()
    clf = Classifier(bb, num_classes=2)
    clf.zero_grad(set_to_none=True)
    out = clf.forward_all(_x())
    t, f = true_false_cams(clf.cams(out), torch.tensor([0, 1]))
    h = torch.rand(t.shape, generator=torch.Generator().manual_seed(2))
    cam_terms.cyborg(t, f, h).backward()  # the saliency term alone, no CE
    grad = _first_conv(bb).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    clf.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", sorted(TV))
def test_logits_match_torchvision(name):
    """Our backbone + Classifier.fc computes exactly the torchvision classifier's logits."""
    builder, cls, head, _ = TV[name]
    torch.manual_seed(0)
    tv = builder(weights=None).eval()
    clf = Classifier(cls(tv), num_classes=1000).eval()
    clf.fc = tv.get_submodule(head)
    with torch.no_grad():
        torch.testing.assert_close(clf(_x()), tv(_x()), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------- cyborg_legacy
def _legacy_out(name: str):
    bb = _backbone(name).eval()
    clf = Classifier(bb, num_classes=2, cam_layer="cyborg_legacy")
    with torch.no_grad():
        return bb, clf, clf.forward_all(_x())


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("resnet50", "layer4.2.conv3"),
        ("resnet18", "layer4.1.conv2"),
        ("efficientnet_b7", "features.8.0"),
    ],
)
def test_cyborg_legacy_is_the_hooked_conv(name, layer):
    bb = _backbone(name)
    conv = bb.get_submodule(layer)
    seen = []
    handle = conv.register_forward_hook(
        lambda m, i, o: seen.append(o.clone())
    )  # before any in-place op
    try:
        bb, clf, out = _legacy_out(name)
    finally:
        handle.remove()
    g = SIZE // bb.stride
    assert out.cam_features.shape == (2, bb.num_features, g, g)
    assert torch.equal(out.cam_features, seen[0])  # pre-BN: not the pooled tensor
    assert not torch.allclose(out.cam_features, out.features)
    assert clf.cams(out).shape == (2, 2, g, g)


def test_resnet_legacy_hook_registered_once_and_follows_deepcopy():
    bb = _backbone("resnet50")
    conv = bb.layer4[-1].conv3
    for _ in range(2):
        with torch.no_grad():
            bb.eval()(_x(1))
    assert len(conv._forward_hooks) == 1
    twin = copy.deepcopy(bb)
    bb.legacy_features = None
    with torch.no_grad():
        twin(_x(1))
    assert bb.legacy_features is None and twin.legacy_features is not None


def test_densenet_legacy_is_pre_relu_features_from_one_pass():
    bb = _backbone("densenet121")
    calls = []
    handle = bb.features.conv0.register_forward_hook(lambda *a: calls.append(1))
    try:
        bb, clf, out = _legacy_out("densenet121")
    finally:
        handle.remove()
    assert len(calls) == 1  # no second trunk pass (unlike CYBORG's code, §1.2)
    assert out.cam_features.shape == (2, 1024, 2, 2)
    assert (out.cam_features < 0).any()  # pre-ReLU: the in-place ReLU must not have touched it
    assert torch.equal(torch.relu(out.cam_features), out.features)


def test_swin_has_no_legacy_layer():
    bb = _backbone("swin_t")
    clf = Classifier(bb, num_classes=2, cam_layer="cyborg_legacy")
    with pytest.raises(ConfigError, match="cyborg_legacy"), torch.no_grad():
        clf.forward_all(_x(1))


# --------------------------------------------------------------------------------------- weights
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty hub cache under a temporary TORCH_HOME; any download attempt fails."""
    ckpt = empty_hub(tmp_path, monkeypatch)

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    for mod, fn in [
        (torch.hub, "load_state_dict_from_url"),
        (torch.hub, "download_url_to_file"),
        (urllib.request, "urlopen"),
    ]:
        monkeypatch.setattr(mod, fn, no_network)
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    return ckpt


def test_pinned_file_names():
    """The backbone table reads its file names from the one pin table (models/catalogue.py), which
    tests/test_weights_fetch.py keeps equal to torchvision's IMAGENET1K_V1 enums."""
    from salience.models.catalogue import imagenet_file

    assert {n: v[3] for n, v in TV.items()} == {n: imagenet_file(n) for n in TV}
    # ResNet-50 V1 as in the papers, not torchvision's DEFAULT (V2)
    assert TV["resnet50"][3] != Path(tvm.ResNet50_Weights.DEFAULT.url).name


def _old_style_densenet_keys(state: dict) -> dict:
    """The IMAGENET1K_V1 file's layout: `norm.1.weight` keys, no `num_batches_tracked`."""
    pat = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
    return {pat.sub(r"\1.\2.", k): v for k, v in state.items() if "num_batches_tracked" not in k}


@pytest.mark.parametrize(
    ("name", "old_style"),
    [
        ("resnet18", False),
        ("resnet50", False),
        ("densenet121", False),
        ("densenet121", True),
        ("swin_t", False),
    ]
    + [("efficientnet_b7", False)],
)
def test_auto_loads_the_hub_file(hub, name, old_style):
    builder, _, _, file = TV[name]
    torch.manual_seed(123)
    state = builder(weights=None).state_dict()
    saved = _old_style_densenet_keys(state) if old_style else state
    if old_style:
        assert any(".norm.1." in k for k in saved)
    torch.save(saved, hub / file)
    bb = build_backbone(name, weights="auto")
    assert bb.weights_origin == f"imagenet:{file}"
    ours = bb.state_dict()
    for key in ours:  # every backbone tensor came from the file
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(ours[key], state[key]), key
    # an explicit path loads the same file
    assert build_backbone(name, weights=str(hub / file)).weights_origin == f"imagenet:{file}"


def test_auto_without_file_is_random_init_with_warning(hub, caplog):
    caplog.set_level(logging.WARNING, logger="salience")
    bb = build_backbone("resnet18", weights="auto")
    assert bb.weights_origin == "random"
    assert "RANDOM INIT" in caplog.text and "resnet18" in caplog.text


def test_missing_explicit_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("resnet18", weights=str(tmp_path / "nope.pth"))


def test_garbage_and_truncated_files_are_checkpoint_errors(hub):
    path = hub / TV["resnet18"][3]
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError):
        build_backbone("resnet18", weights="auto")
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        build_backbone("resnet18", weights="auto")
    torch.save(torch.zeros(3), path)  # a tensor, not a state dict
    with pytest.raises(CheckpointError, match="not a state dict"):
        build_backbone("resnet18", weights="auto")


def test_another_models_file_is_a_checkpoint_error(hub):
    torch.save(tvm.resnet18(weights=None).state_dict(), hub / TV["resnet50"][3])
    with pytest.raises(CheckpointError, match="resnet50"):
        build_backbone("resnet50", weights="auto")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"conv1.weight": _Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError) as err:
        build_backbone("resnet18", weights=str(path))
    assert not marker.exists()
    msg = str(err.value)
    assert (
        "\n" not in msg and "weights_only` set to `False" not in msg
    )  # one line, no unsafe advice
    # control: the payload is real (an unsafe load would have run it)
    pickle.loads(pickle.dumps(_Evil(tmp_path / "control")))
    assert (tmp_path / "control").exists()


def test_backbone_catalogue_equals_registry():
    """`BACKBONE_MODULES` (names known without importing torchvision) lists every registered backbone."""
    from salience.models.base import BACKBONE_MODULES, BACKBONES, _import_all

    _import_all()
    assert sorted(BACKBONE_MODULES) == BACKBONES.names()
