"""Issue 12 §2–4: every method trains K-way. K = 3: each method takes a few optimiser steps with a
finite loss on a 3-class batch; the DD methods' saliency terms are losses.multiclass's terms for
each `false_class`; evaluation CAMs and a model.pt of K = 3 round-trip. K = 2: every `false_class`
gives bit for bit the binary terms of losses.cam_terms on (cam_y, cam_{1−y})."""

from __future__ import annotations

import pytest
import torch

from salience import checkpoint as ckpt
from salience.cam import true_false_cams
from salience.evaluation.evaluate import load_trained
from salience.losses import cam_terms
from salience.losses import multiclass as mc
from salience.methods.base import METHODS, build_method, import_all
from salience.models.base import build_backbone

import_all()
SIZE, GRID = 32, 4  # smallcnn at 32 px: a 4×4 CAM grid
#: GazeGNN at the demo's widths (the CNN here is the CPU one)
SMALL = {"gazegnn": {"channels": [16, 32, 64, 96], "blocks": [1, 1, 2, 1]}}
DD = ("difference", "perclass", "contrast")


def batch(k: int, n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch as salience.data.loader gives it (methods/base.py lists the keys), with
    labels cycling through all k classes and one row without a human map."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, SIZE, SIZE, generator=g)
    maps_cam = torch.nn.functional.adaptive_avg_pool2d(maps.unsqueeze(1), GRID).squeeze(1)
    lo = maps_cam.amin(dim=(1, 2), keepdim=True)
    maps_cam = (maps_cam - lo) / (maps_cam.amax(dim=(1, 2), keepdim=True) - lo)
    has = torch.ones(n, dtype=torch.bool)
    has[-1] = False
    maps[-1] = 0
    maps_cam[-1] = 0
    return {
        "image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "label": torch.arange(n, dtype=torch.int64) % k,
        "map": maps,
        "map_cam": maps_cam,
        "has_map": has,
        "has_map_cam": has.clone(),
        "row": torch.arange(n, dtype=torch.int64),
    }


def model_for(method, k: int, stage: str = "train") -> torch.nn.Module:
    if method.own_network:
        return method.build_own_model("none", stage, num_classes=k)
    return method.build_model(build_backbone("smallcnn", "none"), stage=stage, num_classes=k)


# ------------------------------------------------------------------ every method trains K = 3
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_takes_training_steps_on_three_classes(name):
    torch.manual_seed(0)
    method = build_method(name, SMALL.get(name))
    b = batch(3)
    for stage in method.stages:
        model = model_for(method, 3, stage).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(3):
            out = method.loss(model, b, stage)
            assert torch.isfinite(out.total), (name, stage, float(out.total))
            opt.zero_grad()
            out.total.backward()
            opt.step()
            if out.logits is not None:
                assert out.logits.shape == (6, 3)
        with torch.no_grad():  # every stage scores K columns (MENTOR's stage 1: constant ones)
            assert method.logits(model.eval(), b).shape == (6, 3)
    model.eval()
    with torch.no_grad():
        logits, cams = method.forward_eval(model, b)
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()
    assert (cams is None) == (not method.cam_head)
    if cams is not None:
        assert cams[0].shape == cams[1].shape == (6, GRID, GRID)


def test_evaluation_cams_for_three_classes_are_the_true_class_and_its_strongest_competitor():
    torch.manual_seed(0)
    method = build_method("cyborg")
    model = model_for(method, 3).eval()
    b = batch(3)
    with torch.no_grad():
        logits, (t, f) = method.forward_eval(model, b)
        every = model.cams(model.forward_all(b["image"]))
        _, all_k = method.forward_eval_all(model, b)
    torch.testing.assert_close(all_k, every)
    for i in range(6):
        y = int(b["label"][i])
        wrong = [j for j in range(3) if j != y]
        s = max(wrong, key=lambda j: float(logits[i, j]))
        assert torch.equal(t[i], every[i, y]) and torch.equal(f[i], every[i, s])
    # K = 2 keeps the binary definition f = cam_{1−y}
    model2 = model_for(method, 2).eval()
    b2 = batch(2)
    with torch.no_grad():
        _, (t2, f2) = method.forward_eval(model2, b2)
        want = true_false_cams(model2.cams(model2.forward_all(b2["image"])), b2["label"])
    assert torch.equal(t2, want[0]) and torch.equal(f2, want[1])


# ------------------------------------------------------------------ DD methods: K = 3 and K = 2
def _parts(name: str, k: int, params: dict, seed: int = 1):
    """(method loss parts, (cams, logits, labels, h) of the annotated rows, the class of t)."""
    torch.manual_seed(seed)
    method = build_method(name, params)
    model = model_for(method, k).train()
    b = batch(k, seed=seed)
    parts = method.loss(model, b).parts
    out = model.forward_all(b["image"])
    cams, has = model.cams(out), b["has_map_cam"]
    cls = b["label"] if params.get("cam_class", "true") == "true" else out.logits.argmax(1)
    return method, parts, (cams[has], out.logits[has], cls[has], b["map_cam"][has])


@pytest.mark.parametrize("cam_class", ["true", "predicted"])
@pytest.mark.parametrize("false_class", mc.FALSE_CLASSES)
@pytest.mark.parametrize("name", DD)
def test_dd_methods_at_three_classes_are_the_multiclass_terms(name, false_class, cam_class):
    params = {"false_class": false_class, "cam_class": cam_class}
    method, parts, (cams, logits, cls, h) = _parts(name, 3, params)
    want = getattr(mc, name)(cams, logits, cls, h, false_class)
    want = want if isinstance(want, tuple) else (want,)
    assert set(parts) == {"ce", *method.term_names}
    for term, w, value in zip(method.term_names, method.term_weights, want, strict=True):
        assert torch.equal(parts[term], method.params[w] * value), (term, false_class)


@pytest.mark.parametrize("false_class", mc.FALSE_CLASSES)
@pytest.mark.parametrize("name", DD)
def test_dd_methods_at_two_classes_are_the_binary_terms_for_every_false_class(name, false_class):
    method, parts, (cams, _, cls, h) = _parts(name, 2, {"false_class": false_class})
    want = getattr(cam_terms, name)(*true_false_cams(cams, cls), h)
    want = want if isinstance(want, tuple) else (want,)
    for term, w, value in zip(method.term_names, method.term_weights, want, strict=True):
        assert torch.equal(parts[term], method.params[w] * value), (term, false_class)
    _, default, _ = _parts(name, 2, {})
    assert all(torch.equal(parts[p], default[p]) for p in default)


def test_the_three_false_class_choices_differ_at_three_classes():
    got = {
        fc: _parts("difference", 3, {"false_class": fc})[1]["saliency"] for fc in mc.FALSE_CLASSES
    }
    assert len({float(v.detach()) for v in got.values()}) == 3, got


# ------------------------------------------------------------------ model.pt with K = 3
@pytest.mark.parametrize("name", ["xent", "unet_gaze", "ggcam", "gazegnn"])
def test_a_three_class_checkpoint_is_rebuilt_with_three_outputs(tmp_path, name):
    torch.manual_seed(0)
    method = build_method(name, SMALL.get(name))
    model = model_for(method, 3).eval()
    meta = {"backbone": "smallcnn", "method": name, "stage": "train", "num_classes": 3}
    meta |= {"method_params": method.params, "classes": ["normal", "chf", "pneumonia"]}
    path = tmp_path / "model.pt"
    ckpt.save({"state_dict": model.state_dict(), "meta": meta}, path)
    again, _, got = load_trained(path)
    b = batch(3)
    with torch.no_grad():
        assert torch.equal(method.logits(again.eval(), b), method.logits(model, b))
    assert got["classes"] == ["normal", "chf", "pneumonia"]
