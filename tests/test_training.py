"""Training engine end to end on the generated benchmark (smallcnn, CPU): every method trains and
evaluates; determinism; kill-and-resume; NaN detection; MLflow store contents."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch
from _support import (
    ROOT,
    checkpoint_epoch,
    run_cli,
    salience_argv,
    tiny_config_on,
    wait_for,
    write_config,
)

from salience import config as C
from salience import study
from salience.errors import CheckpointError, DataError, TrainingDiverged
from salience.evaluation.evaluate import evaluate_run
from salience.methods.base import METHODS, import_all
from salience.training.loop import train

import_all()


def run_all_stages(cfg, spec, tracker=None):
    cls = METHODS.get(spec.method)
    for stage in cls.stages:
        train(cfg, spec, stage=stage, tracker=tracker)
    return evaluate_run(cfg, spec, tracker=tracker)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_and_evaluates(tmp_path, tiny_data_dir, method):
    torch.set_num_threads(1)
    # GazeGNN trains its own Pyramid ViG: at the demo's widths, as the CNN here is the CPU one
    sizes = {"gazegnn": {"channels": [16, 32, 64, 96], "blocks": [1, 1, 2, 1]}}
    extra = {"methods": {method: sizes[method]}} if method in sizes else None
    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=[method], extra=extra)
    spec = C.RunSpec("tiny", "all", "smallcnn", method, "base", 0)
    metrics = run_all_stages(cfg, spec)
    rdir = C.run_dir(cfg, spec)
    for name in ("model.pt", "history.csv", "run.json", "scores.csv", "metrics.json"):
        assert (rdir / name).is_file(), name
    assert 0.0 <= metrics["auroc"]["all"] <= 1.0
    scores = pd.read_csv(rdir / "scores.csv")
    assert len(scores) == 32 and set(scores.columns) >= {
        "subset",
        "label",
        "logit0",
        "logit1",
        "p1",
        "p_sigmoid1",
    }
    np.testing.assert_allclose(
        scores["p1"], 1 / (1 + np.exp(-(scores["logit1"] - scores["logit0"]))), rtol=1e-5
    )
    hist = pd.read_csv(rdir / "history.csv")
    assert len(hist) == 2 and np.isfinite(hist.select_dtypes("number").to_numpy()).all()
    obj = torch.load(rdir / "model.pt", weights_only=True)
    assert obj["meta"]["method"] == method and obj["meta"]["backbone"] == "smallcnn"
    # binary data: a two-output head, recorded as such; class names only for K > 2 (issue 12)
    assert obj["meta"]["num_classes"] == 2 and "classes" not in obj["meta"]


def test_flipped_maps_variant_trains(tmp_path, tiny_data_dir):
    cfg = tiny_config_on(
        tmp_path,
        tiny_data_dir,
        methods=["cyborg"],
        extra={
            "experiments": {
                "sanity": {
                    "datasets": ["tiny"],
                    "backbones": ["smallcnn"],
                    "methods": ["cyborg", "xent"],
                    "seeds": [0],
                    "flipped_maps": True,
                }
            }
        },
    )
    runs = study.expand_runs(cfg)
    assert C.RunSpec("tiny", "all", "smallcnn", "cyborg", "flipped", 0) in runs
    assert (
        C.RunSpec("tiny", "all", "smallcnn", "xent", "flipped", 0) not in runs
    )  # xent never reads maps
    spec = C.RunSpec("tiny", "all", "smallcnn", "cyborg", "flipped", 0)
    assert study.resolve_run(cfg, spec)["flip_maps"] is True
    base = run_all_stages(cfg, C.RunSpec("tiny", "all", "smallcnn", "cyborg", "base", 0))
    flipped = run_all_stages(cfg, spec)
    assert base["auroc"]["all"] != flipped["auroc"]["all"]  # the map changes training


def test_same_seed_gives_identical_metrics(tmp_path, tiny_data_dir):
    spec = C.RunSpec("tiny", "all", "smallcnn", "contrast", "base", 3)
    out = []
    for sub in ("a", "b"):
        cfg = tiny_config_on(tmp_path / sub, tiny_data_dir, methods=["contrast"])
        m = run_all_stages(cfg, spec)
        out.append((m["auroc"], pd.read_csv(C.run_dir(cfg, spec) / "history.csv")))
    assert out[0][0] == out[1][0]
    pd.testing.assert_frame_equal(out[0][1], out[1][1], check_exact=True)
    other = run_all_stages(
        tiny_config_on(tmp_path / "c", tiny_data_dir, methods=["contrast"]),
        C.RunSpec("tiny", "all", "smallcnn", "contrast", "base", 4),
    )
    assert (
        pd.read_csv(
            C.run_dir(
                tiny_config_on(tmp_path / "c", tiny_data_dir),
                C.RunSpec("tiny", "all", "smallcnn", "contrast", "base", 4),
            )
            / "history.csv"
        )["train_loss"].iloc[0]
        != out[0][1]["train_loss"].iloc[0]
    )
    assert other["auroc"] is not None


@pytest.mark.integration  # ~46 s on the loaded 2-core machine: too heavy for the fast tier
def test_kill_and_resume_gives_identical_final_metrics(tmp_path, tiny_data_dir):
    epochs = 30
    spec = C.RunSpec("tiny", "all", "smallcnn", "cyborg", "base", 1)
    # uninterrupted reference, in process
    ref_cfg = tiny_config_on(tmp_path / "ref", tiny_data_dir, methods=["cyborg"], epochs=epochs)
    train(ref_cfg, spec)
    ref_hist = pd.read_csv(C.run_dir(ref_cfg, spec) / "history.csv")
    ref_state = torch.load(C.run_dir(ref_cfg, spec) / "model.pt", weights_only=True)["state_dict"]
    # killed with SIGKILL once the first checkpoint exists, then rerun with the same command
    cfg = tiny_config_on(tmp_path / "killed", tiny_data_dir, methods=["cyborg"], epochs=epochs)
    cfg_path = write_config(cfg)
    rdir = C.run_dir(cfg, spec)
    cmd = salience_argv("train", "--config", str(cfg_path), "--run-id", spec.run_id, "--no-mlflow")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )  # ~15 KB of progress lines in all: the pipe never fills
    # the epoch recorded in the checkpoint (torch.load), polled: no fixed sleep
    wait_for(lambda: checkpoint_epoch(rdir / "checkpoint.pt") >= 1, proc, "the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (rdir / "checkpoint.pt").exists() and not (rdir / "model.pt").exists(), (
        "kill landed after the run finished"
    )
    done = torch.load(rdir / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= done < epochs
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"resuming {spec.run_id}" in res.stderr
    pd.testing.assert_frame_equal(pd.read_csv(rdir / "history.csv"), ref_hist, check_exact=True)
    state = torch.load(rdir / "model.pt", weights_only=True)["state_dict"]
    for k in ref_state:
        assert torch.equal(state[k], ref_state[k]), k


def test_nan_loss_stops_with_epoch_and_batch(tmp_path, tiny_data_dir):
    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["cyborg"], lr=1.0e12)
    spec = C.RunSpec("tiny", "all", "smallcnn", "cyborg", "base", 0)
    with pytest.raises(TrainingDiverged, match=r"at epoch \d+, batch \d+; lower train.lr"):
        train(cfg, spec)
    assert not (C.run_dir(cfg, spec) / "model.pt").exists()


@pytest.mark.integration  # ~17 s on the loaded 2-core machine: too heavy for the fast tier
def test_mlflow_store_holds_run_metrics_and_artifacts(tmp_path, tiny_data_dir):
    from mlflow.tracking import MlflowClient

    from salience.tracking import Tracker

    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["difference"])
    uri = C.tracking_uri(cfg)
    assert uri.startswith("sqlite:///") and str(tmp_path) in uri
    spec = C.RunSpec("tiny", "all", "smallcnn", "difference", "base", 0)
    run_all_stages(cfg, spec, tracker=Tracker(uri))
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("salience-chest")
    runs = client.search_runs([exp.experiment_id])
    assert [r.data.tags["salience.run_id"] for r in runs] == [spec.run_id]
    assert [r.info.run_name for r in runs] == ["difference/base/seed0"]  # short; id in the tag
    assert runs[0].inputs.dataset_inputs[0].dataset.name == "tiny"  # the runs table's Dataset
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "difference" and run.data.params["train.epochs"] == "2"
    assert run.data.tags["weights_origin"] == "random" and len(run.data.tags["config_hash"]) == 12
    assert len(client.get_metric_history(run.info.run_id, "val_auroc")) == 2
    assert {
        "train_loss",
        "train_ce",
        "train_saliency",
        "lr",
        "test_auroc_all",
        "test_auroc_sigmoid_all",
    } <= set(run.data.metrics)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "scores.csv", "metrics.json", "history.csv"} <= arts
    assert exp.artifact_location.startswith((tmp_path / "results").as_uri())


@pytest.mark.integration  # ~45 s on the loaded 2-core machine: too heavy for the fast tier
def test_train_evaluate_scores_in_the_same_job(tmp_path, tiny_data_dir):
    """`train --evaluate` (what the workflow's train rule runs) = train, then `evaluate --run-id`:
    same scores and metrics, one MLflow run closed FINISHED with the test metrics and artifacts."""
    from mlflow.tracking import MlflowClient

    cfg = tiny_config_on(
        tmp_path,
        tiny_data_dir,
        methods=["mentor"],
        extra={"methods": {"mentor": {"pretrain_epochs": 1}}},
    )
    cfg_path = write_config(cfg)
    spec = C.RunSpec("tiny", "all", "smallcnn", "mentor", "base", 0)
    early = run_cli(
        [
            "train",
            "--config",
            str(cfg_path),
            "--run-id",
            spec.run_id,
            "--stage",
            "pretrain",
            "--evaluate",
        ],
        check=False,
    )
    assert early.returncode == 2
    assert early.stderr.strip().splitlines()[-1] == (
        "error: train --evaluate: only the final stage ('train') of mentor can be scored, not 'pretrain'; "
        "drop --evaluate for earlier stages"
    )
    assert not (C.run_dir(cfg, spec) / "stage-pretrain").exists()
    run_cli(["train", "--config", str(cfg_path), "--run-id", spec.run_id, "--stage", "pretrain"])
    res = run_cli(["train", "--config", str(cfg_path), "--run-id", spec.run_id, "--evaluate"])
    assert "AUROC (results for tiny/all/smallcnn/mentor/base/seed0): all=" in res.stdout
    rdir = C.run_dir(cfg, spec)
    # methods.mentor.pretrain_epochs: 1 pretraining epoch, then train.epochs (2) of fine-tuning
    assert len(pd.read_csv(rdir / "stage-pretrain" / "history.csv")) == 1
    assert len(pd.read_csv(rdir / "history.csv")) == 2
    assert json.loads((rdir / "run.json").read_text())["stage_epochs"] == 2
    fused = json.loads((rdir / "metrics.json").read_text())
    fused_scores = pd.read_csv(rdir / "scores.csv")
    run_cli(["evaluate", "--config", str(cfg_path), "--run-id", spec.run_id, "--no-mlflow"])
    assert json.loads((rdir / "metrics.json").read_text()) == fused
    pd.testing.assert_frame_equal(pd.read_csv(rdir / "scores.csv"), fused_scores)
    client = MlflowClient(C.tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("salience-chest").experiment_id])
    # one MLflow run per training stage (tag `stage`), both closed
    by_stage = {r.data.tags["stage"]: r for r in runs}
    assert sorted(by_stage) == ["pretrain", "train"] and {
        r.data.tags["salience.run_id"] for r in runs
    } == {spec.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    final = by_stage["train"]
    assert final.data.metrics["test_auroc_all"] == pytest.approx(fused["auroc"]["all"])
    assert {"model.pt", "scores.csv", "metrics.json"} <= {
        a.path for a in client.list_artifacts(final.info.run_id)
    }


def test_unreachable_tracking_server_fails_at_start(tmp_path, tiny_data_dir):
    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["xent"])
    cfg["tracking_uri"] = "http://127.0.0.1:9"
    spec = C.RunSpec("tiny", "all", "smallcnn", "xent", "base", 0)
    t0 = time.time()
    res = run_cli(
        ["train", "--config", str(write_config(cfg)), "--run-id", spec.run_id], check=False
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: MLflow tracking server http://127.0.0.1:9 is unreachable")
    )
    assert not (C.run_dir(cfg, spec) / "checkpoint.pt").exists() and time.time() - t0 < 60


@pytest.mark.integration  # ~20 s on the loaded 2-core machine: too heavy for the fast tier
def test_evaluate_any_checkpoint_and_wrong_backbone(tmp_path, tiny_data_dir):
    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["xent"])
    spec = C.RunSpec("tiny", "all", "smallcnn", "xent", "base", 0)
    train(cfg, spec)
    model = C.run_dir(cfg, spec) / "model.pt"
    out = tmp_path / "val_eval"
    res = run_cli(
        [
            "evaluate",
            "--checkpoint",
            str(model),
            "--prepared",
            str(tiny_data_dir / "prepared" / "tiny"),
            "--split",
            "val",
            "--out",
            str(out),
        ]
    )
    assert "AUROC" in res.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "val" and len(pd.read_csv(out / "scores.csv")) == 24
    bad = run_cli(
        [
            "evaluate",
            "--checkpoint",
            str(model),
            "--prepared",
            str(tiny_data_dir / "prepared" / "tiny"),
            "--out",
            str(tmp_path / "x"),
            "--backbone",
            "resnet18",
        ],
        check=False,
    )
    assert bad.returncode == 2 and "trained with backbone 'smallcnn', not 'resnet18'" in bad.stderr
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_truncated_and_malicious_checkpoints_are_refused(tmp_path):
    from salience import checkpoint as ck

    good = tmp_path / "m.pt"
    ck.save({"state_dict": {"w": torch.ones(3)}, "meta": {}}, good)
    trunc = tmp_path / "t.pt"
    trunc.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        ck.load(trunc)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        ck.load(evil)
    assert not marker.exists()


def test_visualize_writes_fig1_panels(tmp_path, tiny_data_dir):
    from PIL import Image

    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["fooling"])
    spec = C.RunSpec("tiny", "all", "smallcnn", "fooling", "base", 0)
    train(cfg, spec)
    out = tmp_path / "fig1.png"
    run_cli(
        [
            "visualize",
            "--config",
            str(write_config(cfg)),
            "--run-id",
            spec.run_id,
            "--out",
            str(out),
            "--samples",
            "2",
        ]
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_auroc_equals_sklearn():
    """Validation (model selection) and test (subset_metrics) AUROC both equal sklearn's."""
    from sklearn.metrics import roc_auc_score

    from salience.evaluation.metrics import subset_metrics
    from salience.scores import auroc

    rng = np.random.default_rng(0)
    for n in (5, 50, 500):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        for s in (
            rng.normal(size=n),
            np.round(rng.normal(size=n), 1),
            np.zeros(n),
        ):  # ties included
            assert auroc(y, s, "x") == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(DataError, match=r"^x: scores contain NaN/inf; the model diverged"):
        auroc(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), "x")
    with pytest.raises(DataError, match=r"^x: only one class present"):
        auroc(np.array([1, 1]), np.array([0.1, 0.3]), "x")
    y = rng.integers(0, 2, 400)
    subset = np.where(y == 1, rng.choice(["a", "b"], 400), "")
    p1, ps = rng.random(400), np.round(rng.random(400), 1)
    # ranked by the logits (p1 by l1 - l0, sigmoid by l1): margin = p1, l1 = ps
    frame = {"label": y, "subset": subset, "logit0": ps - p1, "logit1": ps}
    m = subset_metrics(pd.DataFrame(frame), "t")
    for name in ("all", "a", "b"):
        keep = (y == 0) | (subset == name) if name != "all" else np.ones(400, bool)
        assert m["auroc"][name] == pytest.approx(roc_auc_score(y[keep], p1[keep]), abs=1e-12)
        assert m["auroc_sigmoid"][name] == pytest.approx(
            roc_auc_score(y[keep], ps[keep]), abs=1e-12
        )
