"""Paper fidelity (issue 13 §2–4, §6): each paper's CYBORG, MENTOR's flipped-map selection and
stage-1 schedule, the tables' cell definitions and AUROC from scores that keep their ranking.

Run directories are real files (run.json, metrics.json written by the evaluation code from a real
scores.csv) so aggregate → tables reads exactly what a study writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _support import REPO, prepare_tiny, tiny_config
from sklearn.metrics import roc_auc_score

import salience.checkpoint as ckpt
import salience.config as sc
from salience import study
from salience.data.loader import BatchStream
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError
from salience.evaluation.evaluate import evaluate_checkpoint, load_trained
from salience.evaluation.metrics import subset_metrics
from salience.inference import mean_loss
from salience.methods.base import build_method
from salience.models.base import build_backbone, feature_grid, find_backbone
from salience.reporting import cli, tables
from salience.reporting.aggregate import collect_roc, collect_runs, read_runs_csv
from salience.scores import softmax_p1, val_auroc
from salience.training.loop import train
from salience.training.setup import split_rows


def write_run(
    root: Path,
    run_id: str,
    task: str,
    scores: pd.DataFrame,
    method_params: dict | None = None,
    cam_layer: str = "pooled",
) -> Path:
    """A run directory as `train --evaluate` leaves it: run.json, scores.csv and the metrics.json
    that the evaluation code computes from those scores."""
    dataset, fold, backbone, method, variant, seed = run_id.split("/")
    d = root / run_id
    d.mkdir(parents=True)
    meta = {"run_id": run_id, "dataset": dataset, "task": task, "fold": fold}
    meta |= {"backbone": backbone, "method": method, "variant": variant, "seed": int(seed[4:])}
    meta |= {"weights_origin": "random", "method_params": method_params or {}}
    meta |= {"cam_layer": cam_layer}
    (d / "run.json").write_text(json.dumps(meta))
    scores.assign(split="test").to_csv(d / "scores.csv", index=False)
    metrics = subset_metrics(scores, run_id) | {"cam_agreement": None, "best_epoch": 1}
    (d / "metrics.json").write_text(json.dumps(metrics | {"epochs": 1}))
    return d


def scores_frame(labels, subsets, margin) -> pd.DataFrame:
    margin = np.asarray(margin, dtype=np.float32)
    logit1 = margin / 2
    return pd.DataFrame(
        {
            "row": np.arange(len(labels)),
            "subset": subsets,
            "label": labels,
            "logit0": -logit1,
            "logit1": logit1,
            "p1": 1 / (1 + np.exp(-margin.astype(np.float64))),
            "p_sigmoid1": 1 / (1 + np.exp(-logit1.astype(np.float64))),
        }
    )


# ---- §2: the CYBORG each paper compared against ---------------------------------------------------
def test_paper_configs_resolve_each_papers_cyborg():
    sage = study.load_config(REPO / "config/paper.yaml")
    dd = study.load_config(REPO / "config/paper-dd.yaml")
    for variant in ("base", "flipped"):
        spec = sc.RunSpec("iris", "all", "resnet50", "cyborg", variant, 0)
        assert study.resolve_run(sage, spec)["method_params"]["cam_class"] == "predicted"
    spec = sc.RunSpec("dd_face", "all", "densenet121", "cyborg", "base", 3)
    assert study.resolve_run(dd, spec)["method_params"]["cam_class"] == "true"
    # DD's own losses keep the true-class CAM in both studies
    spec = sc.RunSpec("dd_face", "all", "densenet121", "contrast", "base", 0)
    assert study.resolve_run(dd, spec)["method_params"]["cam_class"] == "true"


def test_table_caption_names_the_cyborg_variant(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    for kind, root in (("predicted", tmp_path / "sage"), ("true", tmp_path / "dd")):
        for m in ("xent", "cyborg"):
            s = scores_frame(labels, [""] * 40, rng.normal(labels, 1.0))
            params = {"cam_class": kind} if m == "cyborg" else {}
            write_run(root, f"chest/all/resnet50/{m}/base/seed0", "chest", s, params)
    sage = collect_runs(sorted((tmp_path / "sage").rglob("metrics.json"))[i].parent for i in (0, 1))
    dd = collect_runs(p.parent for p in (tmp_path / "dd").rglob("metrics.json"))
    assert set(sage["cam_class"]) == {"predicted", ""}
    assert "predicted-class CAM (official CYBORG code" in tables.sage_t1(sage).latex
    assert "true-class CAM (DD's Baseline)" in tables.dd_t2(dd).latex
    mixed = pd.concat([sage, dd.assign(run_id=dd["run_id"] + "x", seed=1)])
    assert "mix predicted-class and true-class CAMs" in tables.sage_t1(mixed).latex
    # the CAM layer the losses read is named too (official CYBORG hooks vs the pooled map)
    assert "model.cam\\_layer: pooled" in tables.dd_t2(dd).latex
    s = scores_frame(labels, [""] * 40, rng.normal(labels, 1.0))
    params = {"cam_class": "true"}
    write_run(tmp_path / "legacy", "chest/all/resnet50/cyborg/base/seed1", "chest", s, params,
              cam_layer="cyborg_legacy")  # fmt: skip
    legacy = collect_runs(p.parent for p in (tmp_path / "legacy").rglob("metrics.json"))
    assert "hooked layer (model.cam\\_layer: cyborg\\_legacy)" in tables.dd_t2(legacy).latex
    both = pd.concat([dd, legacy])
    assert "CAM losses read different layers across runs" in tables.dd_t2(both).latex


# ---- §3: MENTOR's stage 1 selects on the maps it trains on; published schedule ---------------------
def test_mentor_stage1_defaults_are_the_published_schedule():
    m = build_method("mentor")
    assert m.params["pretrain_epochs"] == 11 and m.stage_epochs("pretrain", 50) == 11
    train = {"lr": 0.005, "momentum": 0.9, "weight_decay": 1e-6, "lr_step": 12, "lr_gamma": 0.1}
    opt = m.optimizer("pretrain", train)
    assert (opt["name"], opt["lr"], opt["lr_gamma"]) == ("adam", 1e-4, 1.0)
    assert m.optimizer("train", train) == {"name": "sgd", **train}
    assert m.selection("pretrain") == ("val_loss", "min")
    # settings, not constants: SGD at train.lr's schedule and train.epochs are one line away
    m = build_method("mentor", {"pretrain_optimizer": "sgd", "pretrain_lr": 0.01})
    assert m.optimizer("pretrain", train) == {
        "name": "sgd",
        **train,
        "lr": 0.01,
        "weight_decay": 0.0,
    }
    assert build_method("mentor", {"pretrain_epochs": None}).stage_epochs("pretrain", 50) == 50
    with pytest.raises(ConfigError, match="pretrain_optimizer: must be 'adam' or 'sgd'"):
        build_method("mentor", {"pretrain_optimizer": "rmsprop"})


@pytest.fixture(scope="module")
def face_data(tmp_path_factory) -> Path:
    """The generated face task (real vs generators), generated and prepared through the CLI."""
    root = tmp_path_factory.mktemp("face")
    prepare_tiny(tiny_config(root, task="face"))
    return root / "data"


def test_flipped_mentor_pretraining_selects_on_the_flipped_validation_loss(tmp_path, face_data):
    torch.set_num_threads(1)
    sanity = {"datasets": ["tiny"], "backbones": ["smallcnn"], "methods": ["mentor"], "seeds": [0]}
    sanity["flipped_maps"] = True
    extra = {"experiments": {"sanity": sanity}, "methods": {"mentor": {"pretrain_epochs": 3}}}
    # a larger rate than the published 1e-4 so that three epochs move the loss noticeably
    extra["methods"]["mentor"]["pretrain_lr"] = 3e-3
    cfg = tiny_config(tmp_path, task="face", methods=["mentor"], extra=extra)
    cfg["data_dir"] = str(face_data)
    spec = sc.RunSpec("tiny", "all", "smallcnn", "mentor", "flipped", 0)
    out = train(cfg, spec, stage="pretrain")
    hist = pd.read_csv(out / "history.csv")
    meta = json.loads((out / "run.json").read_text())
    assert len(hist) == 3 and meta["selection"] == "val_loss" and meta["flip_maps"] is True
    assert meta["best_epoch"] == int(hist["val_loss"].idxmin()) + 1
    assert (hist["lr"] == 3e-3).all()  # Adam at a constant rate (no StepLR decay)
    assert "exp_avg" in torch.load(out / "checkpoint.pt", weights_only=True)["opt"]["state"][0]
    # the selected model's validation loss against 1 − h is the one the selection recorded
    model, method, _ = load_trained(out / "model.pt")
    ds = PreparedDataset(sc.prepared_dir(cfg, "tiny"))
    rows, grid = split_rows(ds, "val", "all"), feature_grid(find_backbone(model), ds.image_size)
    val = {
        flip: mean_loss(
            method, model, BatchStream(ds, rows, 16, cam_grid=grid, flip_maps=flip), "pretrain"
        )
        for flip in (True, False)
    }
    recorded = hist["val_loss"].iloc[meta["best_epoch"] - 1]
    assert recorded == pytest.approx(val[True], rel=1e-5)
    assert abs(val[True] - val[False]) > 1e-3  # the two targets really differ


# ---- §6: AUROC from scores that keep their ranking ------------------------------------------------
def saturated(n: int = 300, seed: int = 0):
    """Labels, subsets and float32 logits whose margins l1 − l0 lie in 20–2000 (p1 == 1.0 in
    float32 for every image) and still rank the classes imperfectly."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    margin = np.exp(rng.uniform(np.log(20), np.log(2000), n) + 0.8 * y).clip(20, 2000)
    logits = np.stack([rng.normal(0, 5, n), np.zeros(n)], 1).astype(np.float32)
    logits[:, 1] = logits[:, 0] + margin.astype(np.float32)
    subsets = np.where(y == 1, rng.choice(["gan_a", "gan_b"], n), "")
    return y, subsets, logits


def test_auroc_ranks_by_margin_when_p1_saturates():
    y, subsets, logits = saturated()
    p1 = softmax_p1(logits)
    assert (p1 == 1.0).all()  # the float32 probability ties every image ...
    margin = logits[:, 1].astype(np.float64) - logits[:, 0]
    truth = roc_auc_score(y, margin)
    assert 0.6 < truth < 0.95  # ... while the margins rank them
    # validation (model selection)
    assert val_auroc(y, logits, "val") == (pytest.approx(truth, abs=1e-12), False)
    # test split, per subset and the CVRL σ(l1) variant
    frame = pd.DataFrame({"label": y, "subset": subsets, "logit0": logits[:, 0]})
    m = subset_metrics(frame.assign(logit1=logits[:, 1], p1=p1), "test")
    assert m["auroc"]["all"] == pytest.approx(truth, abs=1e-12) and not m["constant_scores"]
    for s in ("gan_a", "gan_b"):
        keep = (y == 0) | (subsets == s)
        assert m["auroc"][s] == pytest.approx(roc_auc_score(y[keep], margin[keep]), abs=1e-12)
    l1 = logits[:, 1].astype(np.float64)
    assert m["auroc_sigmoid"]["all"] == pytest.approx(roc_auc_score(y, l1), abs=1e-12)
    assert m["auroc_sigmoid"]["all"] != 0.5


def test_saturated_run_keeps_its_roc_curve(tmp_path):
    y, subsets, logits = saturated(seed=1)
    s = scores_frame(y, subsets, logits[:, 1].astype(np.float64) - logits[:, 0])
    d = write_run(tmp_path, "face/all/resnet50/xent/base/seed0", "face", s)
    roc = collect_roc([d])
    assert len(roc[roc["subset"] == "all"]) > 10  # a curve, not the diagonal of one tie


def test_constant_scores_are_flagged_and_marked_in_tables(tmp_path):
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    rng = np.random.default_rng(3)
    runs = []
    for m, margin in (("xent", rng.normal(labels, 1.0)), ("cyborg", np.full(40, 3.25))):
        d = write_run(
            tmp_path,
            f"chest/all/resnet50/{m}/base/seed0",
            "chest",
            scores_frame(labels, [""] * 40, margin),
            {"cam_class": "predicted"} if m == "cyborg" else {},
        )
        runs.append(d)
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    assert metrics["constant_scores"] is True and metrics["auroc"]["all"] == 0.5
    assert "every image has the same score" in metrics["warnings"][0]
    assert json.loads((runs[0] / "metrics.json").read_text())["constant_scores"] is False
    out = tmp_path / "agg"
    args = ["--runs-root", str(tmp_path), "--out-runs", str(out / "runs.csv")]
    assert cli.main(["aggregate", *args, "--out-roc", str(out / "roc.csv")]) == 0
    table = tables.sage_t1(read_runs_csv(out / "runs.csv"))
    line = next(ln for ln in table.latex.splitlines() if ln.startswith("CYBORG"))
    assert line.endswith(r"$^\dagger$ \\") and "constant scores" in table.latex
    xent = next(ln for ln in table.latex.splitlines() if ln.startswith("Baseline (Xent)"))
    assert r"\dagger" not in xent


# ---- §4: cell definitions as the papers' ----------------------------------------------------------
def face_scores(seed: int, shift_a: float, shift_b: float) -> pd.DataFrame:
    """200 real test images, 400 of generator A, 50 of generator B (unequal sizes on purpose)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(200, int), np.ones(450, int)]
    subsets = np.r_[[""] * 200, ["gen_a"] * 400, ["gen_b"] * 50]
    margin = (
        rng.normal(0, 1, 650) + np.r_[np.zeros(200), np.full(400, shift_a), np.full(50, shift_b)]
    )
    return scores_frame(labels, subsets, margin)


def loo_scores(seed: int, fold: str) -> pd.DataFrame:
    """Iris test split of a held-out fold: bona fide + every attack type (two here)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(60, int), np.ones(80, int)]
    subsets = np.r_[[""] * 60, ["printouts"] * 40, ["artificial"] * 40]
    held = (subsets == fold).astype(float)
    return scores_frame(labels, subsets, rng.normal(0, 1, 140) + 1.5 * held + 0.2 * labels)


def test_face_cell_is_the_mean_over_generators_and_summary_uses_it(tmp_path):
    expected, pooled = {}, {}
    for m, shifts in (("cyborg", (2.5, 0.2)), ("difference", (2.0, 0.5))):
        for seed in (0, 1):
            s = face_scores(seed + 10 * len(m), *shifts)
            write_run(tmp_path, f"dd_face/all/densenet121/{m}/base/seed{seed}", "face", s)
            y, margin = s["label"].to_numpy(), s["logit1"].to_numpy() * 2.0
            per_gen = [
                roc_auc_score(
                    y[(y == 0) | (s["subset"] == g)], margin[(y == 0) | (s["subset"] == g)]
                )
                for g in ("gen_a", "gen_b")
            ]
            expected.setdefault(m, []).append(np.mean(per_gen))
            pooled.setdefault(m, []).append(roc_auc_score(y, margin))
        for seed in (0, 1):
            for fold in ("printouts", "artificial"):
                s = loo_scores(seed * 7 + len(fold) + len(m), fold)
                d = write_run(
                    tmp_path, f"dd_iris/{fold}/densenet121/{m}/base/seed{seed}", "iris", s
                )
                held = json.loads((d / "metrics.json").read_text())["auroc"][fold]
                expected.setdefault(f"iris/{m}", []).append(held)
    out = tmp_path / "agg"
    args = ["--runs-root", str(tmp_path), "--out-runs", str(out / "runs.csv")]
    assert cli.main(["aggregate", *args, "--out-roc", str(out / "roc.csv")]) == 0
    runs = read_runs_csv(out / "runs.csv")
    t2 = tables.dd_t2(runs)
    for m in ("cyborg", "difference"):
        cell = t2.data[(t2.data["kind"] == "aggregate") & (t2.data["row"] == m)]
        face = cell[cell["col"] == "dd_face"].iloc[0]
        assert face["mean"] == pytest.approx(np.mean(expected[m]), abs=1e-12)
        assert abs(face["mean"] - np.mean(pooled[m])) > 0.02  # pooled differs with these sizes
        iris = cell[cell["col"] == "dd_iris"].iloc[0]
        assert iris["mean"] == pytest.approx(np.mean(expected[f"iris/{m}"]), abs=1e-12)
    assert "face cells: mean over generators" in t2.latex
    # the headline numbers (`dvc metrics show`): same definitions, keyed by dataset name
    assert cli.main(["summary", "--runs", str(out / "runs.csv"), "--out", str(out / "s.json")]) == 0
    summary = json.loads((out / "s.json").read_text())
    assert set(summary["auroc_mean"]) == {
        f"{d}/{m}" for d in ("dd_face", "dd_iris") for m in expected if "/" not in m
    }
    for m in ("cyborg", "difference"):
        assert summary["auroc_mean"][f"dd_face/{m}"] == round(float(np.mean(expected[m])), 4)
        want = round(float(np.mean(expected[f"iris/{m}"])), 4)
        assert summary["auroc_mean"][f"dd_iris/{m}"] == want


def _runs_of(tmp_path: Path, pairs) -> pd.DataFrame:
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    for i, (m, bb) in enumerate(pairs):
        s = scores_frame(labels, [""] * 40, np.random.default_rng(i).normal(labels, 1.0))
        write_run(tmp_path, f"chest/all/{bb}/{m}/base/seed0", "chest", s)
    return collect_runs(p.parent for p in sorted(tmp_path.rglob("metrics.json")))


def test_sage_t2_has_the_papers_rows_and_the_rest_goes_to_the_extended_table(tmp_path):
    methods = ["xent", "cyborg", "ggcam", "gazegnn", "sage"]
    runs = _runs_of(tmp_path, [(m, bb) for m in methods for bb in ("resnet50", "swin_t")])
    rows = lambda t: set(t.data.loc[t.data["kind"] == "aggregate", "row"])  # noqa: E731
    t2 = tables.sage_t2(runs)
    assert rows(t2) == {
        "xent/resnet50",
        "xent/swin_t",
        "cyborg/resnet50",
        "sage/resnet50",
        "sage/swin_t",
    }
    ext = tables.sage_t2_extended(runs)
    extra = {
        "cyborg/swin_t",
        "ggcam/resnet50",
        "ggcam/swin_t",
        "gazegnn/resnet50",
        "gazegnn/swin_t",
    }
    assert rows(ext) == extra | {"xent/resnet50", "xent/swin_t"}  # Xent as the reference
    assert "beyond SAGE Table 2" in ext.latex and "Mirrors" not in ext.latex
    # GG-CAM and Gaze-GNN stay in SAGE Table 1 (ResNet50)
    assert {"ggcam", "gazegnn"} <= rows(tables.sage_t1(runs))
    assert tables.sage_t2_extended(runs[runs["method"].isin(["xent", "sage"])]).data.empty


def test_each_study_writes_its_own_papers_tables(tmp_path):
    ids = lambda runs: [t.id for t in tables.build_all(runs)]  # noqa: E731
    sage = _runs_of(
        tmp_path / "sage", [("xent", "resnet50"), ("cyborg", "resnet50"), ("sage", "resnet50")]
    )
    dd = _runs_of(
        tmp_path / "dd", [(m, "densenet121") for m in ("cyborg", "difference", "contrast")]
    )
    assert ids(sage) == [*tables.PAPER_TABLES["sage"], "agreement"]  # CYBORG alone: no DD mirror
    assert ids(dd) == [*tables.PAPER_TABLES["dd"], "agreement"]  # CYBORG alone: no SAGE mirror
    assert ids(pd.concat([sage, dd])) == tables.TABLE_IDS
    # through the CLI, as the `tables` rule runs it
    sage.to_csv(tmp_path / "runs.csv", index=False)
    assert (
        cli.main(["tables", "--runs", str(tmp_path / "runs.csv"), "--out-dir", str(tmp_path / "t")])
        == 0
    )
    written = sorted(p.stem for p in (tmp_path / "t").glob("*.csv"))
    # plus the overview of every method run, whichever papers' tables are written (issue 14)
    assert written == sorted([*tables.PAPER_TABLES["sage"], "agreement", "overview"])
    args = ["--papers", "dd,sage", "--out-dir", str(tmp_path / "both")]
    assert cli.main(["tables", "--runs", str(tmp_path / "runs.csv"), *args]) == 0
    assert len(list((tmp_path / "both").glob("*.tex"))) == len(tables.TABLE_IDS) + 1


def test_constant_model_gets_warnings_in_its_metrics(tmp_path, face_data):
    """All-zero weights: every test image gets logits (0, 0); the run was also selected on an epoch
    with constant validation scores (model.pt meta, as the training loop records it)."""
    model = build_method("xent").build_model(build_backbone("smallcnn", weights="none"))
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    meta = {"backbone": "smallcnn", "method": "xent", "stage": "train", "best_epoch": 1}
    ckpt.save(
        {"state_dict": state, "meta": meta | {"val_constant_scores": True}}, tmp_path / "m.pt"
    )
    prepared = face_data / "prepared" / "tiny"
    m = evaluate_checkpoint(tmp_path / "m.pt", prepared, "test", tmp_path / "out", what="zero")
    assert m["constant_scores"] is True and m["auroc"]["all"] == 0.5
    assert [w.split(":")[0] for w in m["warnings"]] == ["zero", "zero"]
    assert "every image has the same score (logit margin 0)" in m["warnings"][0]
    assert "selected epoch scored every validation image the same" in m["warnings"][1]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["warnings"] == m["warnings"]
