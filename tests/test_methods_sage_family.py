"""SAGE and its baselines (boyd_blur, unet_gaze, mentor, ggcam, gazegnn): one real training step on
every backbone they support, CE-only limits, MENTOR's encoder transfer, GazeGNN's test-time maps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import salience  # noqa: F401  (torchvision shim first)
from salience.cam import minmax
from salience.errors import CheckpointError, ConfigError
from salience.losses import sage as S
from salience.methods.base import METHODS, build_method, import_all, method_class
from salience.models.base import Classifier, _import_all, build_backbone, feature_grid

torch.set_num_threads(1)
import_all()
_import_all()  # registers the torchvision backbones: a missing module fails here, never skips

FAMILY = ("sage", "boyd_blur", "unet_gaze", "mentor", "ggcam", "gazegnn")
PAPER_BACKBONES = ("resnet50", "densenet121", "efficientnet_b7", "swin_t")


def make_batch(backbone, size=48, b=4, flipped=False, has_map=None, seed=0):
    """Hand-built batch per methods/base.py: Gaussian-bump maps at input res and on the CAM grid."""
    g = torch.Generator().manual_seed(seed)
    ii = torch.arange(size, dtype=torch.float32)
    maps = []
    for k in range(b):
        cy, cx = size * (0.3 + 0.4 * k / max(b - 1, 1)), size * (0.6 - 0.2 * k / max(b - 1, 1))
        bump = torch.exp(
            -((ii[:, None] - cy) ** 2 + (ii[None, :] - cx) ** 2) / (2 * (size / 6) ** 2)
        )
        maps.append(bump)
    h = minmax(torch.stack(maps))
    grid = feature_grid(backbone, size)
    h_cam = minmax(F.adaptive_avg_pool2d(h.unsqueeze(1), grid).squeeze(1))
    if flipped:  # what the loader does for the sanity check (SAGE Table 3)
        h, h_cam = 1 - h, 1 - h_cam
    has = torch.ones(b, dtype=torch.bool) if has_map is None else torch.tensor(has_map)
    return {
        "image": torch.randn(b, 3, size, size, generator=g),
        "label": torch.arange(b) % 2,
        "map": h * has.view(-1, 1, 1),
        "map_cam": h_cam * has.view(-1, 1, 1),
        "has_map": has,
        "has_map_cam": has,
        "row": torch.arange(b),
    }


def first_conv(backbone: nn.Module) -> nn.Conv2d:
    return next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))


def train_steps(method_name, backbone_name, size=48, b=4, params=None, **batch_kw):
    """Run one SGD step per stage, as the training loop does; return the method and last model."""
    method = build_method(method_name, params)
    method.check_backbone(backbone_name)
    previous = None
    for stage in method.stages:
        model = method.build_model(build_backbone(backbone_name, "none"), stage=stage)
        method.init_stage(model, stage, previous)
        batch = make_batch(model.backbone, size, b, **batch_kw)
        model.train()
        conv = first_conv(model.backbone)
        w0 = conv.weight.detach().clone()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        out = method.loss(model, batch, stage)
        assert out.total.dim() == 0 and torch.isfinite(out.total), (method_name, stage)
        assert all(torch.isfinite(v) for v in out.parts.values())
        torch.testing.assert_close(sum(out.parts.values()), out.total)
        if out.logits is not None:
            assert out.logits.shape == (b, 2)
        opt.zero_grad()
        out.total.backward()
        assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
        assert conv.weight.grad.abs().sum() > 0, f"{method_name}/{stage}: no gradient at first conv"
        opt.step()
        assert not torch.equal(conv.weight.detach(), w0), (
            f"{method_name}/{stage}: weights unchanged"
        )
        model.eval()
        with torch.no_grad():
            scores = method.logits(model, batch)
        assert scores.shape == (b, 2) and torch.isfinite(scores).all()
        previous = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return method, model


# ------------------------------------------------------------------------- one step, smallcnn
@pytest.mark.parametrize("flipped", [False, True], ids=["maps", "flipped"])
@pytest.mark.parametrize("name", FAMILY)
def test_step_smallcnn(name, flipped):
    train_steps(name, "smallcnn", flipped=flipped)


@pytest.mark.parametrize("name", FAMILY)
def test_step_smallcnn_partly_annotated(name):
    train_steps(name, "smallcnn", size=32, has_map=[True, False, True, False])


@pytest.mark.parametrize("name", sorted(set(METHODS.names()) - set(FAMILY)))
def test_step_smallcnn_every_other_method(name):
    train_steps(name, "smallcnn")


# ------------------------------------------------------------------------ one step, paper nets
@pytest.mark.parametrize("backbone", PAPER_BACKBONES)
@pytest.mark.parametrize("name", FAMILY)
def test_step_paper_backbones(name, backbone):
    cls = method_class(name)
    if cls.supported_backbones is not None and backbone not in cls.supported_backbones:
        with pytest.raises(ConfigError, match=backbone):
            build_method(name).check_backbone(backbone)
        return
    b = 2 if backbone == "efficientnet_b7" else 4
    train_steps(name, backbone, size=64, b=b)


# --------------------------------------------------------------------------- CE-only limits
def _eval_model(method, size=32, seed=3):
    torch.manual_seed(seed)
    model = method.build_model(build_backbone("smallcnn", "none"))
    return model.eval()  # eval: BN uses running stats, so every pass is the same function


@pytest.mark.parametrize(
    "name, params",
    [
        ("sage", {"alpha": 1.0}),
        ("unet_gaze", {"gamma": 1.0}),
        ("ggcam", {"weighting": "fixed", "gaze_weight": 0.0}),
        ("boyd_blur", {"levels": []}),
    ],
)
def test_zero_saliency_weight_is_plain_ce(name, params):
    method = build_method(name, params)
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32)
    out = method.loss(model, batch)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, model(batch["image"]))
    torch.testing.assert_close(
        out.total, F.cross_entropy(out.logits, batch["label"]), rtol=0, atol=0
    )


# ------------------------------------------------------------------------------------- SAGE
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"margin": "batch_mean", "tau": 3.0, "tau_scale": "square", "lam": 0.3, "alpha": 0.2},
        {"margin_detach": False, "sigma": 5.0, "ce_on": "all"},
    ],
)
def test_sage_loss_is_eq8(params):
    method = build_method("sage", params)
    p = method.params
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32, has_map=[True, True, False, True])
    out = method.loss(model, batch)
    has = batch["has_map"]
    x, lab = batch["image"], batch["label"]
    xb, xk, xd = S.blur_views(x[has], batch["map"][has], p["sigma"], 7)
    o, o1, ok, od = (model.forward_all(v) for v in (x, xb, xk, xd))
    y, z = o.logits[has], o.embedding[has]
    tau, lam, alpha = p["tau"], p["lam"], p["alpha"]
    scale = 2**tau if p["tau_scale"] == "pow2" else tau**2
    sla = lam * scale * S.js_divergence(y, ok.logits, tau) + (1 - lam) * scale * S.js_divergence(
        o1.logits, od.logits, tau
    )
    mu = S.cosine_distance(z, o1.embedding)
    if p["margin"] == "batch_mean":
        mu = mu.mean()
    sce = lam * S.triplet(z, ok.embedding, od.embedding, mu) + (1 - lam) * S.triplet(
        o1.embedding, od.embedding, ok.embedding, mu
    )
    ce = F.cross_entropy(o.logits, lab)
    if p["ce_on"] == "all":
        la = lab[has]
        ce = (ce + sum(F.cross_entropy(v.logits, la) for v in (o1, ok, od))) / 4
    expected = alpha * ce + (1 - alpha) * (sla + sce)
    torch.testing.assert_close(out.total, expected)
    torch.testing.assert_close(out.parts["sla"], (1 - alpha) * sla)


def test_sage_concat_equals_separate_in_eval():
    a, b = build_method("sage"), build_method("sage", {"views": "concat"})
    model = _eval_model(a)
    batch = make_batch(model.backbone, 32)
    torch.testing.assert_close(a.loss(model, batch).total, b.loss(model, batch).total)


def test_sage_margin_detach_changes_gradients_not_value():
    # μ = cs(z, z') sits inside active hinges at init: detaching it keeps the loss value and only
    # removes μ's own gradient path.
    model = _eval_model(build_method("sage"))
    batch = make_batch(model.backbone, 32)
    totals, grads = [], []
    for detach in (True, False):
        model.zero_grad()
        total = build_method("sage", {"margin_detach": detach}).loss(model, batch).total
        total.backward()
        totals.append(total.detach())
        grads.append(first_conv(model.backbone).weight.grad.clone())
    torch.testing.assert_close(totals[0], totals[1])
    assert torch.isfinite(grads[0]).all() and not torch.allclose(grads[0], grads[1])


def test_sage_unannotated_batch_is_ce_only():
    method = build_method("sage")
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32, has_map=[False] * 4)
    out = method.loss(model, batch)
    torch.testing.assert_close(out.total, 0.5 * F.cross_entropy(out.logits, batch["label"]))


# ------------------------------------------------------------------------------------ Boyd
def test_boyd_all_versions_are_composites():
    method = build_method("boyd_blur", {"levels": [2, 4], "sampling": "all"})
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32, has_map=[True, False, True, True])
    x, y = method.inputs(batch)
    b = batch["image"].shape[0]
    assert x.shape[0] == 3 * b and torch.equal(y, batch["label"].repeat(3))
    torch.testing.assert_close(x[:b], batch["image"])
    for i, sigma in enumerate((2.0, 4.0), start=1):
        k = 2 * math.ceil(3 * sigma) + 1
        comp = S.composite(batch["image"], batch["map"], S.gaussian_blur(batch["image"], sigma, k))
        got = x[i * b : (i + 1) * b]
        torch.testing.assert_close(got[batch["has_map"]], comp[batch["has_map"]])
        torch.testing.assert_close(got[~batch["has_map"]], batch["image"][~batch["has_map"]])


def test_boyd_binary_mask_and_kernel_cap():
    method = build_method(
        "boyd_blur", {"levels": [16], "include_original": False, "mask": "binary"}
    )
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32)
    x, _ = method.inputs(batch)  # σ = 16 at 32 px: kernel capped at 63
    m = (batch["map"] >= 0.5).float()
    comp = S.composite(batch["image"], m, S.gaussian_blur(batch["image"], 16.0, 63))
    torch.testing.assert_close(x, comp)


# --------------------------------------------------------------------------------- MENTOR
@pytest.mark.parametrize("backbone", ("smallcnn", "resnet18", *PAPER_BACKBONES))
def test_mentor_transfers_every_encoder_tensor(backbone):
    method = build_method("mentor")
    torch.manual_seed(0)
    pre = method.build_model(build_backbone(backbone, "none"), stage="pretrain")
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in pre.state_dict().items()}
    torch.manual_seed(1)
    clf = method.build_model(build_backbone(backbone, "none"), stage="train")
    assert isinstance(clf, Classifier)
    method.init_stage(clf, "train", state)
    got = clf.backbone.state_dict()
    assert got and all(torch.equal(v, state["backbone." + k]) for k, v in got.items())
    assert method.selection("pretrain") == ("val_loss", "min")
    assert method.selection("train") == ("val_auroc", "max")


def test_mentor_pretrain_epochs():
    assert build_method("mentor").stage_epochs("pretrain", 4) == 11  # MENTOR's published 11
    assert build_method("mentor", {"pretrain_epochs": None}).stage_epochs("pretrain", 4) == 4
    m = build_method("mentor", {"pretrain_epochs": 2})
    assert (m.stage_epochs("pretrain", 4), m.stage_epochs("train", 4)) == (2, 4)
    assert build_method("xent").stage_epochs("train", 4) == 4
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(
            ConfigError, match="methods.mentor.pretrain_epochs: must be an integer >= 1 or null"
        ):
            build_method("mentor", {"pretrain_epochs": bad})


def test_mentor_incomplete_checkpoint_raises():
    method = build_method("mentor")
    pre = method.build_model(build_backbone("smallcnn", "none"), stage="pretrain")
    state = pre.state_dict()
    dropped = "backbone.stages.2.1.1.running_var"
    del state[dropped]
    clf = method.build_model(build_backbone("smallcnn", "none"), stage="train")
    with pytest.raises(CheckpointError, match=r"stages\.2\.1\.1\.running_var"):
        method.init_stage(clf, "train", state)
    with pytest.raises(CheckpointError, match="pretrain"):
        method.init_stage(clf, "train", None)
    other = method.build_model(build_backbone("resnet18", "none"), stage="pretrain").state_dict()
    with pytest.raises(CheckpointError, match="missing"):
        method.init_stage(clf, "train", other)


# ---------------------------------------------------------------------------------- GG-CAM
def test_ggcam_logit_is_gap_of_cam_plus_bias():
    method = build_method("ggcam")
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32)
    out = model.forward_all(batch["image"])
    cams = model.cams(out)
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + model.bias, out.logits)


@pytest.mark.parametrize("class_index", ["true_label", "legacy_bug"])
def test_ggcam_uncertainty_loss_by_hand(class_index):
    params = {"init_log_sigma_ce": 0.3, "init_log_sigma_gaze": -0.2, "class_index": class_index}
    method = build_method("ggcam", params)
    model = _eval_model(method)
    batch = make_batch(model.backbone, 32)
    out = method.loss(model, batch)
    o = model.forward_all(batch["image"])
    cams = model.cams(o)
    cls = batch["label"] if class_index == "true_label" else torch.zeros(4, dtype=torch.long)
    cam = cams[torch.arange(4), cls]
    sc, sd = math.exp(0.3), math.exp(-0.2)
    expected = (
        F.cross_entropy(o.logits, batch["label"]) / sc**2
        + math.log(sc + 1)
        + F.mse_loss(cam, batch["map_cam"]) / (2 * sd**2)
        + math.log(sd + 1)
    )
    torch.testing.assert_close(out.total, expected)
    names = {n for n, _ in model.named_parameters()}
    assert {"log_sigma.ce", "log_sigma.gaze"} <= names  # trained by the loop's optimiser


# --------------------------------------------------------------------------------- GazeGNN
def test_gazegnn_uniform_test_maps_ignore_batch_map():
    # one step leaves the fusion BN with a running mean (the constant map)
    method, model = train_steps("gazegnn", "smallcnn", params={"test_maps": "uniform"})
    method.prepare_eval(torch.ones(4, dtype=torch.bool).numpy(), "test split")
    assert method.maps_at_test and method.eval_notes()["test_maps"] == "uniform"
    batch = make_batch(model.backbone, 48)
    other = dict(batch, map=1 - batch["map"], map_cam=torch.rand_like(batch["map_cam"]))
    with torch.no_grad():
        torch.testing.assert_close(method.logits(model, batch), method.logits(model, other))
        provided = build_method("gazegnn", {"test_maps": "provided"})
        assert not torch.allclose(provided.logits(model, batch), provided.logits(model, other))


# ------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "name, key, value",
    [
        ("sage", "tau", 0),
        ("sage", "margin", "mean"),
        ("sage", "kernel_size", 6),
        ("sage", "views", "stacked"),
        ("boyd_blur", "sampling", "some"),
        ("boyd_blur", "levels", [2, -1]),
        ("unet_gaze", "gamma", 1.5),
        ("ggcam", "class_index", "pred"),
        ("ggcam", "weighting", "none"),
        ("gazegnn", "test_maps", "zeros"),
        ("gazegnn", "k", 0),
    ],
)
def test_bad_settings_name_the_key(name, key, value):
    with pytest.raises(ConfigError, match=rf"methods\.{name}\.{key}"):
        build_method(name, {key: value})


@pytest.mark.parametrize("name", FAMILY)
def test_unknown_setting_rejected(name):
    with pytest.raises(ConfigError, match=rf"methods\.{name}\.nope"):
        build_method(name, {"nope": 1})
