"""GazeGNN as published (methods/gazegnn.py, models/pvig.py): the Pyramid ViG pyramid, the graph
operations against straightforward loops, the gaze map as an input at training and test time, its
place in the run grid, a CLI training run on a tiny generated dataset, determinism."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _support import prepare_tiny, run_cli, tiny_config, write_config

import salience  # noqa: F401  (torchvision shim first)
from salience import config as C
from salience import study
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError, DataError
from salience.evaluation.evaluate import EvalSplit, load_trained, score_split
from salience.methods.base import build_method
from salience.methods.gazegnn import GazeGNNNet, node_gaze
from salience.models.pvig import (
    MRConv,
    PyramidViG,
    _relative_pos,
    knn_graph,
    max_relative,
)
from salience.reporting.aggregate import collect_runs
from salience.reporting.cells import gaze_note
from salience.reporting.tables import sage_t1
from salience.training.loop import train

torch.set_num_threads(1)
SMALL = {"channels": [8, 16, 24, 32], "blocks": [1, 1, 2, 1]}  # tiny widths for the loop tests


# ------------------------------------------------------------------------------- the pyramid
@pytest.mark.parametrize(
    "size, grids", [(224, [56, 28, 14, 7]), (48, [12, 6, 3, 2]), (32, [8, 4, 2, 1])]
)
def test_four_stage_pyramid_shapes(size, grids):
    torch.manual_seed(0)
    net = build_method("gazegnn").build_own_model("none")  # default: Pyramid ViG-Ti
    assert net.backbone.channels == (48, 96, 240, 384)
    assert net.backbone.blocks_per_stage == (2, 2, 6, 2) and net.backbone.k == 9
    assert net.backbone.node_grid(size) == grids[0]
    net.eval()
    with torch.no_grad():
        levels = net.backbone.pyramid(torch.randn(1, 3, size, size))
        logits = net(torch.randn(1, 3, size, size))
    assert [tuple(t.shape) for t in levels] == [
        (1, c, g, g) for c, g in zip((48, 96, 240, 384), grids)
    ]
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_ti_has_the_published_parameter_count():
    """Han et al. Table 2: Pyramid ViG-Ti has 10.7 M parameters (ImageNet head, 1000 classes)."""
    net = GazeGNNNet(PyramidViG((48, 96, 240, 384), (2, 2, 6, 2)), num_classes=1000)
    n = sum(p.numel() for n_, p in net.named_parameters() if not n_.startswith("b1."))
    assert round(n / 1e6, 1) == 10.7


def test_dilation_grows_per_block_and_keys_are_pooled():
    vig = PyramidViG((48, 96, 240, 384), (2, 2, 6, 2))
    graphers = [m for m in vig.modules() if type(m).__name__ == "Grapher"]
    # min(block // 4 + 1, 49 // k) over the 12 blocks; keys pooled by 4, 2, 1, 1 per stage
    assert [g.dilation for g in graphers] == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert [g.reduce for g in graphers] == [4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1]


# ------------------------------------------------------------------- graph ops vs plain loops
def test_max_relative_equals_a_loop_on_a_tiny_graph():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 4, generator=g)
    idx = torch.randint(0, 4, (2, 5, 3), generator=g)
    want = torch.empty(2, 3, 5)
    for b in range(2):
        for c in range(3):
            for i in range(5):
                want[b, c, i] = max(float(y[b, c, j] - x[b, c, i]) for j in idx[b, i].tolist())
    torch.testing.assert_close(max_relative(x, y, idx), want)
    # MRConv feeds [x_0, r_0, x_1, r_1, ...] to its grouped 1×1 conv
    conv = MRConv(4, 8).eval()
    x4, y4 = torch.randn(1, 4, 5, generator=g), torch.randn(1, 4, 4, generator=g)
    r = max_relative(x4, y4, idx[:1])
    inter = torch.stack([x4[0, c // 2] if c % 2 == 0 else r[0, c // 2] for c in range(8)])
    torch.testing.assert_close(conv(x4, y4, idx[:1]), conv.nn(inter[None, :, :, None])[..., 0])


def test_knn_graph_equals_brute_force_with_dilation():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(1, 4, 7, generator=g), torch.randn(1, 4, 6, generator=g)
    rel = torch.randn(7, 6, generator=g) * 0.1
    got = knn_graph(x, y, k=2, dilation=2, rel=rel)
    xn, yn = x[0].T.numpy(), y[0].T.numpy()
    xn = xn / np.linalg.norm(xn, axis=1, keepdims=True)
    yn = yn / np.linalg.norm(yn, axis=1, keepdims=True)
    for i in range(7):
        d = [float(((xn[i] - yn[j]) ** 2).sum() + rel[i, j]) for j in range(6)]
        order = sorted(range(6), key=lambda j: d[j])
        assert got[0, i].tolist() == order[:4][::2]  # the 4 nearest, every 2nd


def test_relative_position_term_is_the_sincos_product():
    dim, h, w = 8, 3, 3
    rel = _relative_pos(dim, h, w, h, w)
    omega = [1 / 10000 ** (d / 2) for d in range(2)]  # dim/4 = 2 frequencies per axis
    for i in range(h * w):
        for j in range(h * w):
            dr, dc = i // w - j // w, i % w - j % w
            s = sum(math.cos(o * dr) + math.cos(o * dc) for o in omega)
            assert float(rel[i, j]) == pytest.approx(-2 * s / dim, abs=1e-6)


def test_node_gaze_is_gazegnns_window_sum():
    """Per node (stride 4) the sum over the 14×14 window [4i−7, 4i+7) clipped to the image, then
    min-max: GazeGNN's getPatchGaze, written as loops."""
    g = torch.Generator().manual_seed(2)
    m = torch.rand(2, 32, 32, generator=g) ** 3
    got = node_gaze(m, 8)
    for b in range(2):
        want = torch.empty(8, 8)
        for i in range(8):
            for j in range(8):
                r0, r1 = max(4 * i - 7, 0), min(4 * i + 7, 32)
                c0, c1 = max(4 * j - 7, 0), min(4 * j + 7, 32)
                want[i, j] = m[b, r0:r1, c0:c1].sum()
        want = (want - want.min()) / (want.max() - want.min())
        torch.testing.assert_close(got[b], want)
    assert torch.equal(node_gaze(torch.zeros(1, 32, 32), 8), torch.zeros(1, 8, 8))


# -------------------------------------------------------------------------- the map as input
def _batch(size=32, b=4, seed=0, has_map=True):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(b, 3, size, size, generator=g),
        "label": torch.arange(b) % 2,
        "map": torch.rand(b, size, size, generator=g),
        "has_map": torch.full((b,), has_map),
    }


def test_gaze_map_changes_the_output_and_enters_at_the_stem():
    torch.manual_seed(0)
    method = build_method("gazegnn", SMALL)
    model = method.build_own_model("none")
    batch = _batch()
    method.loss(model, batch).total.backward()  # one training pass: BN statistics move
    assert model.b1.weight.grad is not None and model.b1.weight.grad.abs().sum() > 0
    model.eval()
    other = dict(batch, map=batch["map"].flip(-1))
    with torch.no_grad():
        a, b = method.logits(model, batch), method.logits(model, other)
        assert not torch.allclose(a, b)  # all rows annotated: their maps are read
        # the map is added to the stem nodes: the same bias through `node_bias` gives the same logits
        grid = model.backbone.node_grid(32)
        bias = model.b1(node_gaze(batch["map"], grid).unsqueeze(1))
        feats = model.backbone(batch["image"], bias)
        torch.testing.assert_close(model.prediction(feats.mean((2, 3), keepdim=True)).flatten(1), a)


def test_test_maps_policy_per_split():
    method = build_method("gazegnn", SMALL)
    method.prepare_eval(np.ones(5, bool), "x: test split")
    assert method.eval_notes() == {"test_maps": "provided"}
    method.prepare_eval(np.array([True, False, True]), "x: test split")  # auto: falls back
    assert method.eval_notes() == {"test_maps": "uniform"}
    strict = build_method("gazegnn", {**SMALL, "test_maps": "provided"})
    with pytest.raises(DataError) as err:
        strict.prepare_eval(np.array([True, False, False]), "data/prepared/x: test split")
    assert str(err.value) == (
        "data/prepared/x: test split: 2 of 3 rows have no saliency map; "
        "methods.gazegnn.test_maps: provided needs one per row (use auto or uniform)"
    )
    torch.manual_seed(0)
    model = method.build_own_model("none").eval()
    batch = _batch()
    with torch.no_grad():  # uniform: the maps are not read
        u = build_method("gazegnn", {**SMALL, "test_maps": "uniform"})
        flipped = dict(batch, map=batch["map"].flip(-1))
        torch.testing.assert_close(u.logits(model, batch), u.logits(model, flipped))


@pytest.mark.parametrize(
    "key, value",
    [("channels", [48, 96, 240]), ("channels", [6, 8, 12, 16]), ("blocks", [2, 0, 1, 1])],
)
def test_bad_sizes_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"methods\.gazegnn\.{key}: must be"):
        build_method("gazegnn", {key: value})


# ------------------------------------------------------------------ published Pyramid ViG files
def _published_names(state: dict) -> dict:
    """Our PyramidViG keys → Efficient-AI-Backbones' (`stem.convs.*`, `backbone.*`, a Downsample's
    `conv.*`, `graph_conv.gconv.nn.*`), the layout of pvig_ti_78.5.pth.tar that GazeGNN loads."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^blocks\.(\d+)\.([01]\.[a-z_]+)$", r"blocks.\1.conv.\2", key)
        key = key.replace("blocks.", "backbone.", 1).replace("stem.", "stem.convs.", 1)
        out[key.replace(".graph_conv.nn.", ".graph_conv.gconv.nn.")] = value
    return out


def test_loads_a_published_layout_file_and_replaces_the_1000_class_conv(tmp_path):
    torch.manual_seed(3)
    src = GazeGNNNet(PyramidViG(SMALL["channels"], SMALL["blocks"]), num_classes=1000)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.rand_like(p))
    state = _published_names(src.backbone.state_dict())
    state["backbone.0.0.relative_pos"] = torch.zeros(1, 64, 4)  # fixed; recomputed, not loaded
    state.update({f"prediction.{k}": v for k, v in src.prediction.state_dict().items()})
    path = tmp_path / "pvig_small.pth.tar"
    torch.save(state, path)
    net = build_method("gazegnn", SMALL).build_own_model(str(path))
    # an explicit path is "file:" unless it carries the pinned file name (models/weights.py)
    assert net.backbone.weights_origin == "file:pvig_small.pth.tar"
    got, want = net.backbone.state_dict(), src.backbone.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert torch.equal(net.prediction[0].weight, src.prediction[0].weight)  # pretrained head
    assert torch.equal(net.prediction[1].weight, src.prediction[1].weight)
    assert net.prediction[4].weight.shape == (2, 1024, 1, 1)  # GazeGNN's new class conv


# ------------------------------------------------------------------------------ the run grid
def test_runs_once_per_grid_under_resnet50_or_the_first_backbone(tmp_path):
    cfg = tiny_config(tmp_path, methods=["xent", "gazegnn"])
    grid = cfg["experiments"]["main"]
    grid["backbones"] = ["densenet121", "resnet50", "swin_t"]
    runs = study.expand_runs(cfg)
    assert {r.backbone for r in runs if r.method == "gazegnn"} == {"resnet50"}
    assert len([r for r in runs if r.method == "xent"]) == 3
    assert "gazegnn on densenet121: brings its own network (pvig), run once under resnet50" in (
        study.skipped_combinations(cfg)
    )
    grid["backbones"] = ["smallcnn", "resnet18"]
    assert {r.backbone for r in study.expand_runs(cfg) if r.method == "gazegnn"} == {"smallcnn"}


# -------------------------------------------------------------- end to end through the CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One GazeGNN run trained and scored by `python -m salience train --evaluate`."""
    tmp = tmp_path_factory.mktemp("gazegnn")
    cfg = tiny_config(tmp, methods=["gazegnn"], epochs=1, extra={"methods": {"gazegnn": SMALL}})
    prepare_tiny(cfg)
    spec = study.expand_runs(cfg)[0]
    res = run_cli(
        ["train", "--config", str(write_config(cfg)), "--run-id", spec.run_id, "--evaluate"]
        + ["--no-mlflow"]
    )
    return cfg, spec, res


def test_cli_training_run_reads_the_test_maps(trained):
    cfg, spec, res = trained
    assert spec.run_id == "tiny/all/smallcnn/gazegnn/base/seed0"
    assert "AUROC (results for tiny/all/smallcnn/gazegnn/base/seed0): all=" in res.stdout
    rdir = C.run_dir(cfg, spec)
    metrics = json.loads((rdir / "metrics.json").read_text())
    assert metrics["test_maps"] == "provided"  # every generated test row has a map
    # the stored test scores are those of the model fed each image's own map, not the constant
    model, method, _ = load_trained(rdir / "model.pt", run=spec)
    assert isinstance(model, GazeGNNNet) and model.backbone.channels == (8, 16, 24, 32)
    ds = PreparedDataset(C.prepared_dir(cfg, "tiny"))
    rows = ds.rows("test")
    model.eval()
    with_maps, constant = [], []
    with torch.no_grad():
        for batch in BatchStream(ds, rows, 16, cam_grid=4):
            grid = model.backbone.node_grid(batch["image"].shape[-1])
            with_maps.append(model(batch["image"], node_gaze(batch["map"], grid)))
            constant.append(model(batch["image"], None))
    scores = pd.read_csv(rdir / "scores.csv")
    got = scores[["logit0", "logit1"]].to_numpy()
    np.testing.assert_allclose(got, torch.cat(with_maps).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, torch.cat(constant).numpy(), atol=1e-4)


def test_flipped_runs_read_flipped_test_maps(trained):
    """A sanity (flipped-map) run trains on 1 − h; evaluation feeds it 1 − h too."""
    cfg, spec, _ = trained
    model, method, _ = load_trained(C.run_dir(cfg, spec) / "model.pt", run=spec)
    ds = PreparedDataset(C.prepared_dir(cfg, "tiny"))
    rows = ds.rows("test")[:16]
    method.prepare_eval(ds.index["has_map"].to_numpy()[rows], "test split")
    scores, _ = score_split(
        model, method, EvalSplit(ds, rows, 4, 16, torch.device("cpu"), flip_maps=True)
    )
    batch = next(iter(BatchStream(ds, rows, 16, cam_grid=4)))
    with torch.no_grad():
        want = model(batch["image"], node_gaze(1 - batch["map"], model.backbone.node_grid(32)))
    np.testing.assert_allclose(scores[["logit0", "logit1"]].to_numpy(), want.numpy(), atol=1e-5)


def test_same_seed_same_model(trained):
    cfg, spec, _ = trained
    first = pd.read_csv(C.run_dir(cfg, spec) / "history.csv")
    cfg2 = dict(cfg, results_dir=str(Path(cfg["results_dir"]).parent / "again"))
    out = train(cfg2, spec)
    pd.testing.assert_frame_equal(pd.read_csv(out / "history.csv"), first)
    a = torch.load(C.run_dir(cfg, spec) / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------- captions
def test_sage_t1_caption_from_the_trained_run(trained):
    cfg, spec, _ = trained
    runs = collect_runs([C.run_dir(cfg, spec)])
    assert set(runs["test_maps"]) == {"provided"}
    tex = sage_t1(runs).latex
    assert "Gaze-GNN is its own Pyramid ViG network; it read each test image's own saliency" in tex


def test_caption_says_which_maps_gazegnn_read():
    runs = pd.DataFrame({"method": ["xent", "gazegnn"], "test_maps": ["", "provided"]})
    assert "read each test image's own saliency map at test time" in gaze_note(runs)
    assert "constant map" in gaze_note(runs.assign(test_maps=["", "uniform"]))
    assert gaze_note(runs[runs["method"] == "xent"]) == ""
