"""DD RQ1 measured: saliency metrics pinned to scipy, deletion/insertion curves on a model whose
evidence is known by construction, and the RQ1 table/figure from a real Snakemake run."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from _support import compile_latex, run_cli
from scipy import special, stats
from torch import nn

from salience.evaluation import faithfulness as FA
from salience.evaluation import maps as M
from salience.losses.sage import gaussian_blur

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------- metrics
def _maps(n: int = 12, side: int = 7) -> tuple[np.ndarray, np.ndarray]:
    pred = RNG.random((n, side, side)) ** 2
    human = RNG.random((n, side, side))
    return pred, human


def test_cc_is_pearsons_r():
    pred, human = _maps()
    want = [
        stats.pearsonr(p.ravel(), h.ravel()).statistic for p, h in zip(pred, human, strict=True)
    ]
    np.testing.assert_allclose(M.cc(pred, human), want, rtol=1e-12)
    # invariant to an affine change of either map, symmetric
    np.testing.assert_allclose(M.cc(3 * pred + 1, human), M.cc(human, pred), rtol=1e-12)


def test_sim_is_one_minus_half_l1_distance():
    pred, human = _maps()
    p = pred.reshape(len(pred), -1) / pred.reshape(len(pred), -1).sum(1, keepdims=True)
    q = human.reshape(len(human), -1) / human.reshape(len(human), -1).sum(1, keepdims=True)
    # Σ min(p, q) = 1 − ½‖p − q‖₁ for two distributions (an independent route)
    np.testing.assert_allclose(M.sim(pred, human), 1 - 0.5 * np.abs(p - q).sum(1), rtol=1e-12)
    np.testing.assert_allclose(M.sim(human, human), 1.0)


def test_kl_is_scipys_relative_entropy_of_the_human_map():
    pred, human = _maps()
    pred = pred + 0.01  # strictly positive: the benchmark's ε is then negligible
    want = [stats.entropy(h.ravel(), p.ravel()) for p, h in zip(pred, human, strict=True)]
    np.testing.assert_allclose(M.kl(pred, human), want, rtol=1e-9)
    p = pred[0].ravel() / pred[0].sum()
    q = human[0].ravel() / human[0].sum()
    assert M.kl(pred[:1], human[:1])[0] == pytest.approx(special.rel_entr(q, p).sum(), rel=1e-9)
    assert M.kl(human, human) == pytest.approx(np.zeros(len(human)), abs=1e-12)


def test_nss_is_the_mean_z_score_at_the_fixations():
    pred, human = _maps()
    fix = M.top_fraction_fixations(human, 0.2)
    want = [stats.zscore(p.ravel())[f.ravel()].mean() for p, f in zip(pred, fix, strict=True)]
    np.testing.assert_allclose(M.nss(pred, fix), want, rtol=1e-12)
    assert (fix.reshape(len(fix), -1).sum(1) == math.ceil(0.2 * 49)).all()  # no ties in random maps


def test_top_fraction_keeps_a_binary_region_whole_and_undefined_values_are_nan():
    region = np.zeros((1, 6, 6))
    region[0, 1:4, 1:4] = 1.0  # 9 of 36 cells
    assert M.top_fraction_fixations(region, 0.1).sum() == 9  # ties kept
    assert M.top_fraction_fixations(np.zeros((1, 6, 6)), 0.2).sum() == 0
    const, human = np.ones((1, 6, 6)), region
    assert np.isnan(M.cc(const, human)[0]) and np.isnan(M.nss(const, region.astype(bool))[0])
    assert np.isnan(M.sim(np.zeros((1, 6, 6)), human)[0]) and np.isnan(
        M.kl(np.zeros((1, 6, 6)), human)[0]
    )
    assert M.nss(region, region.astype(bool))[0] > 1.5  # the region map scores its own region high


# ------------------------------------------------------------------------------------- faithfulness
SIDE, CELL = 24, 4  # 24-px images, a 6×6 "CAM grid"
REGION = (slice(4, 12), slice(8, 16))  # the pixels the model reads: 2×2 grid cells


class RegionReader(nn.Module):
    """logit₁ = ⟨w, x⟩ over REGION with w a ±1 checkerboard, logit₀ = 0: the evidence is the
    high-frequency pattern inside one known region (blurring a pixel there removes its share)."""

    def __init__(self) -> None:
        super().__init__()
        w = torch.zeros(SIDE, SIDE)
        yy, xx = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
        w[REGION] = ((yy + xx) % 2 * 2 - 1).float()[REGION]
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1 = (x[:, 0] * self.w).sum((1, 2)) / 10.0
        return torch.stack([torch.zeros_like(l1), l1], 1)


def _images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, SIDE, SIDE, generator=g) * 0.5
    x[:, 0][:, REGION[0], REGION[1]] += RegionReader().w[REGION].clamp_min(0)  # the pattern
    return x, torch.ones(n, dtype=torch.long)


def _auc(order: torch.Tensor, x, y, mode: str) -> float:
    c = FA.margin_curves(
        RegionReader(), x, y, order, mode=mode, steps=12, sigma=10.0, kernel_size=7
    )
    return float(FA.curve_auc(c.numpy()).mean())


def test_deletion_ranks_the_known_evidence_first_and_a_constant_map_ties_with_random():
    n = 48
    x, y = _images(n)
    right = torch.zeros(n, SIDE // CELL, SIDE // CELL)
    right[:, 1:3, 2:4] = 1.0  # REGION on the 6×6 grid
    wrong = torch.zeros_like(right)
    wrong[:, 4:6, 0:2] = 1.0
    size = (SIDE, SIDE)
    orders = {
        "right": FA.pixel_order(right, size, torch.Generator().manual_seed(3)),
        "wrong": FA.pixel_order(wrong, size, torch.Generator().manual_seed(3)),
        "constant": FA.pixel_order(
            torch.full_like(right, 0.7), size, torch.Generator().manual_seed(4)
        ),
        "random": FA.random_order(n, size, torch.Generator().manual_seed(5)),
    }
    dele = {k: _auc(o, x, y, "deletion") for k, o in orders.items()}
    ins = {k: _auc(o, x, y, "insertion") for k, o in orders.items()}
    full = float(RegionReader()(x)[:, 1].mean())
    # the right map removes the evidence within the first ~1/9 of the pixels
    assert dele["right"] < 0.25 * dele["random"], dele
    assert ins["right"] > 1.5 * ins["random"], ins
    # a map of pixels the model never reads is slower than chance at deletion
    assert dele["wrong"] > dele["random"], dele
    # a constant map is a random order (different draw): ties with random, far from the right map
    gap = dele["random"] - dele["right"]
    assert abs(dele["constant"] - dele["random"]) < 0.1 * gap, dele
    assert abs(ins["constant"] - ins["random"]) < 0.1 * (ins["right"] - ins["random"]), ins
    # step 0 of deletion is the intact image, the last step the blurred image
    c = FA.margin_curves(
        RegionReader(), x, y, orders["right"], mode="deletion", steps=4, sigma=10.0, kernel_size=7
    )
    assert c[:, 0].mean().item() == pytest.approx(full, rel=1e-5)
    blurred = RegionReader()(gaussian_blur(x, 10.0, 7))[:, 1]
    torch.testing.assert_close(c[:, -1], blurred)


def test_pixel_order_is_a_permutation_and_curve_auc_is_the_trapezoid():
    maps = torch.rand(5, 6, 6)
    order = FA.pixel_order(maps, (24, 24), torch.Generator().manual_seed(0))
    assert (order.sort(1).values == torch.arange(576)).all()
    curves = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(FA.curve_auc(curves), [np.trapezoid(c, dx=0.5) for c in curves])
    with pytest.raises(ValueError, match="mode must be deletion or insertion"):
        FA.margin_curves(
            RegionReader(), *_images(2), order[:2], mode="other", steps=2, sigma=1.0, kernel_size=3
        )


# ------------------------------------------------------------------------------------- CLI, workflow
@pytest.mark.integration  # ~15 s on the loaded 2-core machine: too heavy for the fast tier
def test_rq1_bad_inputs_one_line_nothing_written(tmp_path):
    out = tmp_path / "rq1"
    proc = run_cli(
        ["rq1", "--inputs", "runs/x/rq1.json", "--out-dir", str(out)],
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (
        "error: runs/x/rq1.json: missing; run `python -m salience rq1-score --run-id ...` for this run"
    )
    assert "Traceback" not in proc.stderr and not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    (tmp_path / "rq1_images.csv").write_text("row\n")
    proc = run_cli(
        ["rq1", "--inputs", str(bad), "--out-dir", str(out)], check=False, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: not an rq1.json written by rq1-score ('run_id'); score the run again"
    )


def test_rq1_counterpart_must_be_a_method(tmp_path):
    from _support import tiny_config, write_config

    cfg = tiny_config(tmp_path)
    cfg["rq1"] = {"counterpart": "cybrog"}
    proc = run_cli(
        ["runs", "--config", str(write_config(cfg))], check=False, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: {tmp_path}/config.yaml: rq1.counterpart: unknown method 'cybrog'"
    ), last


@pytest.mark.integration
def test_rq1_table_and_figure_from_the_workflow(e2e_run):
    """The CI config's fooling run and its CYBORG counterpart, scored by the rq1_score jobs and
    summarised by the rq1 rule; the CC of t is the `cam_agreement` the training job scored."""
    from salience import study
    from salience.evaluation.rq1 import rq1_runs

    cfg = study.load_config(e2e_run.config)
    runs = rq1_runs(cfg)
    assert {r.method for r in runs} == {"fooling", "cyborg"}
    for spec in runs:
        d = e2e_run.results / "runs" / spec.run_id
        body = json.loads((d / "rq1.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        assert body["agreement"]["t"]["cc"] == pytest.approx(metrics["cam_agreement"], abs=1e-6)
        assert body["faithfulness"]["n_images"] == cfg["rq1"]["faithfulness_images"]
        for mode in ("deletion", "insertion"):
            for kind in ("t", "f", "d", "random"):
                curve = body["faithfulness"][mode][kind]["curve"]
                assert (
                    len(curve) == cfg["rq1"]["faithfulness_steps"] + 1 and np.isfinite(curve).all()
                )
        per_image = pd.read_csv(d / "rq1_images.csv")
        assert set(per_image["kind"]) == {"t", "f", "d", "random"}
    table = pd.read_csv(e2e_run.results / "rq1" / "rq1.csv")
    assert set(table["method"]) == {"fooling", "cyborg"}
    assert set(table["metric"]) == {"cc", "sim", "kl", "nss", "deletion_auc", "insertion_auc"}
    d_rows = table[table["kind"] == "d"]
    assert d_rows["n_images_d_vs_t"].min() >= 2 and d_rows["p_images_d_vs_t"].notna().any()
    png = e2e_run.results / "rq1" / "rq1_deletion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "\\begin{tabular}" in (e2e_run.results / "rq1" / "rq1.tex").read_text()
    html = (e2e_run.results / "report.html").read_text(errors="replace")
    assert "rq1_deletion.png" in html and "DD RQ1" in html


def test_rq1_table_means_over_seeds_and_paired_tests_of_d_against_t(tmp_path):
    from salience.reporting.rq1 import CAPTION, rq1_latex, rq1_table

    rng = np.random.default_rng(2)
    runs, images = [], []
    for seed in range(3):
        for kind in ("t", "f", "d", "random"):
            row = {
                "dataset": "face",
                "fold": "all",
                "method": "fooling",
                "seed": seed,
                "kind": kind,
            }
            row |= {
                m: rng.normal() for m in ("cc", "sim", "kl", "nss", "deletion_auc", "insertion_auc")
            }
            if kind == "random":
                row |= {"cc": None, "sim": None, "kl": None, "nss": None}
            runs.append(row)
            for r in range(8):
                images.append({**row, "row": r, "cc": rng.normal() + (kind == "d")})
    runs, images = pd.DataFrame(runs), pd.DataFrame(images)
    table = rq1_table(runs, images).set_index(["kind", "metric"])
    v = runs.set_index(["kind", "seed"])
    assert table.at[("d", "cc"), "mean"] == pytest.approx(v.loc["d", "cc"].mean())
    assert table.at[("d", "cc"), "std"] == pytest.approx(v.loc["d", "cc"].std(ddof=1))
    want = stats.ttest_rel(v.loc["d", "deletion_auc"], v.loc["t", "deletion_auc"]).pvalue
    assert table.at[("d", "deletion_auc"), "p_seeds_d_vs_t"] == pytest.approx(want)
    per_img = images.groupby(["kind", "row"])["cc"].mean()
    want = stats.ttest_rel(per_img["d"], per_img["t"]).pvalue
    assert table.at[("d", "cc"), "p_images_d_vs_t"] == pytest.approx(want)
    assert table.at[("d", "cc"), "n_images_d_vs_t"] == 8
    assert ("random", "cc") not in table.index and ("random", "deletion_auc") in table.index
    compile_latex(rq1_latex(rq1_table(runs, images), CAPTION), tmp_path)


@pytest.mark.integration  # ~14 s on the loaded 2-core machine: too heavy for the fast tier
def test_rq1_score_refuses_a_model_without_cams(tmp_path):
    """GazeGNN needs a map at test time (no CAM head to score); one line, nothing written."""
    from _support import tiny_config, write_config

    from salience import checkpoint as ckpt
    from salience import config as sc
    from salience import study
    from salience.methods.base import build_method
    from salience.models.base import build_backbone

    cfg = tiny_config(tmp_path, methods=["gazegnn"])
    spec = study.expand_runs(cfg)[0]
    model = build_method("gazegnn", {}).build_model(
        build_backbone("smallcnn", weights="none"), cam_layer="pooled", stage="train"
    )
    meta = {"run_id": spec.run_id, "backbone": "smallcnn", "method": "gazegnn", "stage": "train"}
    rdir = sc.run_dir(cfg, spec)
    ckpt.save({"state_dict": model.state_dict(), "meta": meta}, rdir / "model.pt")
    proc = run_cli(
        ["rq1-score", "--config", str(write_config(cfg)), "--run-id", spec.run_id],
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {spec.run_id}: method gazegnn has no class activation maps; RQ1 scores CAM-head "
        "runs (e.g. fooling, cyborg)"
    )
    assert sorted(p.name for p in rdir.iterdir()) == ["model.pt"]


@pytest.mark.integration  # ~32 s on the loaded 2-core machine: too heavy for the fast tier
def test_rq1_score_stops_on_a_diverged_model(tmp_path):
    """NaN CAMs are an error naming the run and the first test row, never an 'undefined' value."""
    from _support import prepare_tiny, tiny_config, write_config

    from salience import checkpoint as ckpt
    from salience import config as sc
    from salience import study
    from salience.data.prepared import PreparedDataset
    from salience.methods.base import build_method
    from salience.models.base import build_backbone

    cfg = tiny_config(tmp_path, methods=["fooling"])
    ds = PreparedDataset(prepare_tiny(cfg))
    spec = study.expand_runs(cfg)[0]
    model = build_method("fooling", {}).build_model(
        build_backbone("smallcnn", weights="none"), cam_layer="pooled", stage="train"
    )
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    meta = {"run_id": spec.run_id, "backbone": "smallcnn", "method": "fooling", "stage": "train"}
    rdir = sc.run_dir(cfg, spec)
    ckpt.save({"state_dict": model.state_dict(), "meta": meta}, rdir / "model.pt")
    proc = run_cli(
        ["rq1-score", "--config", str(write_config(cfg)), "--run-id", spec.run_id],
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    test = ds.rows("test")
    first = int(test[ds.index["has_map"].to_numpy(dtype=bool)[test]][0])
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {spec.run_id}: the CAMs of test row {first} contain NaN/inf; the model diverged "
        "(retrain it with a lower train.lr)"
    )
    assert sorted(p.name for p in rdir.iterdir()) == ["model.pt"]


def test_rq1_without_fooling_runs_writes_an_empty_table_and_figure(tmp_path):
    from salience.reporting.rq1 import TABLE_COLUMNS, build_rq1

    paths = build_rq1([], tmp_path / "rq1", "cyborg")
    table = pd.read_csv(paths[0])
    assert table.empty and list(table.columns) == TABLE_COLUMNS
    assert "\\begin{tabular}" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
