"""Degenerate numerics (issue 6): constant CAMs, constant or all-zero human maps, batches without
any map, batches of one class and single-sample batches give a finite loss and finite gradients
for every method in the registry, in every training stage (docs/robustness.md, "Degenerate
numerics"). Also through the real loop: a training split that leaves a trailing batch of one."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from _support import tiny_config_on

from salience import config as C
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.methods.base import METHODS, build_method, import_all
from salience.models.base import build_backbone, feature_grid, find_backbone
from salience.training.loop import train

import_all()
SIZE = 32  # smallcnn at 32 px: 4×4 CAM grid
BACKBONE = "smallcnn"


def make_batch(
    n: int,
    *,
    labels=None,
    map_value: float | None = None,
    has_map: bool = True,
    image: str = "noise",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A loader-shaped batch (salience.methods.base). map_value None: a random blob-like map
    (min-max 0..1); a number: a constant map of that value (0.0 = all-zero saliency)."""
    g = torch.Generator().manual_seed(seed)
    grid = SIZE // 8
    if image == "noise":
        x = torch.randn(n, 3, SIZE, SIZE, generator=g)
    else:  # a constant image: zero variance everywhere
        x = torch.zeros(n, 3, SIZE, SIZE)
    if map_value is None:
        m = torch.rand(n, SIZE, SIZE, generator=g)
        m = (m - m.amin((1, 2), keepdim=True)) / (
            m.amax((1, 2), keepdim=True) - m.amin((1, 2), keepdim=True)
        )
        mc = torch.nn.functional.adaptive_avg_pool2d(m.unsqueeze(1), grid).squeeze(1)
        mc = (mc - mc.amin((1, 2), keepdim=True)) / (
            mc.amax((1, 2), keepdim=True) - mc.amin((1, 2), keepdim=True)
        )
    else:
        m = torch.full((n, SIZE, SIZE), float(map_value))
        mc = torch.full((n, grid, grid), float(map_value))
    if not has_map:
        m, mc = torch.zeros_like(m), torch.zeros_like(mc)
    lab = torch.tensor(
        labels if labels is not None else [i % 2 for i in range(n)], dtype=torch.int64
    )
    return {
        "image": x,
        "label": lab,
        "map": m,
        "map_cam": mc,
        "has_map": torch.full((n,), has_map),
        "has_map_cam": torch.full((n,), has_map),
        "row": torch.arange(n),
    }


def build_stage_models(method_name: str) -> list[tuple[str, object, torch.nn.Module]]:
    """(stage, method, model) for every training stage, each stage initialised from the previous
    one as the loop does."""
    method = build_method(method_name)
    out, previous = [], None
    for stage in method.stages:
        torch.manual_seed(0)
        model = method.build_model(
            build_backbone(BACKBONE, weights="none"), cam_layer="pooled", stage=stage
        )
        method.init_stage(model, stage, previous)
        if not method.own_network:  # GazeGNN trains its Pyramid ViG, whatever the backbone
            assert feature_grid(find_backbone(model), SIZE) == SIZE // 8
        out.append((stage, method, model))
        previous = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return out


def zero_weights(model: torch.nn.Module) -> None:
    """Every parameter 0: features, CAMs and logits are constant (all zero)."""
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()


SCENARIOS: dict[str, tuple[Callable[[], dict], bool]] = {
    # name: (batch, zero the weights first → constant CAMs)
    "constant-cams": (lambda: make_batch(8), True),
    "constant-cams-one-sample": (lambda: make_batch(1, labels=[1]), True),
    "constant-maps": (lambda: make_batch(8, map_value=0.5), False),
    "all-zero-maps": (lambda: make_batch(8, map_value=0.0), False),
    "all-one-maps": (lambda: make_batch(8, map_value=1.0), False),
    "no-annotated-sample": (lambda: make_batch(8, has_map=False), False),
    "one-class-0": (lambda: make_batch(8, labels=[0] * 8), False),
    "one-class-1": (lambda: make_batch(8, labels=[1] * 8), False),
    "single-sample": (lambda: make_batch(1, labels=[0]), False),
    "single-sample-no-map": (lambda: make_batch(1, labels=[1], has_map=False), False),
    "constant-image": (lambda: make_batch(4, image="zeros"), False),
}


# GazeGNN's published head batch-normalises the pooled vector (B×1024×1×1): a training batch of one
# sample cannot be normalised, and the training loop never forms one (data/loader.py, no_singleton).
ONE_SAMPLE = {"constant-cams-one-sample", "single-sample", "single-sample-no-map"}
CASES = [
    (m, s) for m in METHODS.names() for s in SCENARIOS if not (m == "gazegnn" and s in ONE_SAMPLE)
]


@pytest.mark.parametrize("method_name, scenario", CASES)
def test_loss_and_gradients_are_finite(method_name: str, scenario: str):
    torch.set_num_threads(1)
    make, zero = SCENARIOS[scenario]
    for stage, method, model in build_stage_models(method_name):
        if zero:
            zero_weights(model)
        model.train()
        batch = make()
        lo = method.loss(model, batch, stage)
        value = float(lo.total.detach())
        assert math.isfinite(value), f"{method_name} ({stage}), {scenario}: loss {value}"
        for k, v in lo.parts.items():
            assert torch.isfinite(v.detach()).all(), (
                f"{method_name} ({stage}), {scenario}: part {k} = {v}"
            )
        model.zero_grad(set_to_none=True)
        lo.total.backward()
        bad = [
            n
            for n, p in model.named_parameters()
            if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        assert not bad, f"{method_name} ({stage}), {scenario}: non-finite gradients in {bad[:5]}"
        # evaluation scores of the same batch are finite too (eval mode: BatchNorm running stats)
        model.eval()
        with torch.no_grad():
            logits = method.logits(model, batch)
        assert logits.shape == (len(batch["label"]), 2) and torch.isfinite(logits).all(), (
            f"{method_name} ({stage}), {scenario}"
        )


# ------------------------------------------------------------------------------- through the loop
def test_trailing_singleton_batch_is_merged(tiny_data_dir):
    """48 training rows in batches of 47 would leave a last batch of one sample: training streams
    merge it into the batch before (no sample lost); evaluation streams keep it (eval-mode BN)."""
    ds = PreparedDataset(tiny_data_dir / "prepared" / "tiny")
    rows = ds.rows("train")
    assert len(rows) == 48
    train_stream = BatchStream(ds, rows, 47, cam_grid=4, shuffle=True, seed=0, no_singleton=True)
    batches = list(train_stream)
    assert train_stream.merges_singleton and len(train_stream) == len(batches) == 1
    assert sorted(torch.cat([b["row"] for b in batches]).tolist()) == rows.tolist()
    sizes = [
        len(b["label"])
        for b in BatchStream(ds, rows, 5, cam_grid=4, shuffle=True, seed=0, no_singleton=True)
    ]
    assert sizes == [5] * 9 + [3]  # 48 = 9·5 + 3: nothing to merge
    sizes = [len(b["label"]) for b in BatchStream(ds, rows, 47, cam_grid=4)]
    assert sizes == [47, 1]  # evaluation never drops or merges


@pytest.mark.parametrize("method_name", ["xent", "gazegnn"])
def test_training_with_a_trailing_batch_of_one(tmp_path, tiny_data_dir, method_name, caplog):
    """resnet18 at 32 px has a 1×1 feature map: a training batch of one sample would stop
    BatchNorm ("Expected more than 1 value per channel"). The loop merges it and says so."""
    torch.set_num_threads(1)
    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=[method_name], epochs=1, batch_size=47)
    cfg["experiments"]["main"]["backbones"] = ["resnet18"]
    spec = C.RunSpec("tiny", "all", "resnet18", method_name, "base", 0)
    with caplog.at_level("INFO", logger="salience"):
        out = train(cfg, spec)
    assert "would leave a last batch of one sample; it is merged" in caplog.text
    assert "1×1 CAM grid at 32 px" in caplog.text or not METHODS.get(method_name).uses_maps
    hist = pd.read_csv(out / "history.csv")
    assert np.isfinite(hist.select_dtypes("number").to_numpy()).all()
