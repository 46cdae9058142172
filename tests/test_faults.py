"""Faults (issue 6): SIGKILL and resume through the Snakemake target, killed evaluation and
aggregation leave nothing under a final name, eight training and evaluation jobs at once on one
MLflow SQLite store lose no metric and no artefact.

The direct-CLI kill/resume test lives in test_training.py; the unreachable-server test too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from _support import (
    ROOT,
    checkpoint_epoch,
    salience_argv,
    snakemake_argv,
    tiny_config_on,
    wait_for,
    workflow_env,
    write_config,
)

from salience import config as C
from salience import study
from salience.training.loop import train


def trainer_of(proc: subprocess.Popen) -> psutil.Process | None:
    """The `python -m salience train` process Snakemake started (child of its shell)."""
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            cmd = child.cmdline()
            if "salience" in cmd and "train" in cmd and "bash" not in Path(cmd[0]).name:
                return child
    except psutil.NoSuchProcess:
        pass
    return None


# ------------------------------------------------------------------------------ kill and resume
def inside_next_epoch(log: Path, ck: Path, after: int) -> bool:
    """The trainer has checkpointed an epoch later than `after` and its log shows a progress line
    (`[run] epoch E/N batch b/B`, a quarter of an epoch) of the epoch after that checkpoint: a kill
    now lands mid-epoch, whatever the machine's speed (no fixed sleep)."""
    done = checkpoint_epoch(ck)
    if done <= after or not log.exists():
        return False
    return re.search(rf"\] epoch {done + 1}/\d+ batch \d+/", log.read_text()) is not None


@pytest.mark.integration
def test_snakemake_target_resumes_after_sigkill_with_identical_metrics(tmp_path, tiny_data_dir):
    """SIGKILL the training job of `snakemake <run>/model.pt` mid-epoch, rerun the same target:
    it resumes from checkpoint.pt; then SIGKILL Snakemake itself with its job (lost node), unlock,
    rerun: the final history and weights equal an uninterrupted run's, and MLflow holds one run
    with every epoch's metrics."""
    epochs = 40
    spec = C.RunSpec("tiny", "all", "smallcnn", "cyborg", "base", 0)
    ref_cfg = tiny_config_on(tmp_path / "ref", tiny_data_dir, methods=["cyborg"], epochs=epochs)
    torch.set_num_threads(1)
    train(ref_cfg, spec)  # the uninterrupted reference, in process
    ref_hist = pd.read_csv(C.run_dir(ref_cfg, spec) / "history.csv")
    ref_state = torch.load(C.run_dir(ref_cfg, spec) / "model.pt", weights_only=True)["state_dict"]

    wf = tmp_path / "wf"
    cfg = tiny_config_on(wf, tiny_data_dir, methods=["cyborg"], epochs=epochs)
    cfg_path = write_config(cfg)
    rdir = C.run_dir(cfg, spec)
    target = rdir / "model.pt"
    ck = rdir / "checkpoint.pt"
    train_log = wf / "logs" / "train" / f"{spec.run_id}.log"  # the rule's log: the job's stderr
    snakemake = snakemake_argv(wf, cfg_path, str(target))

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            snakemake,
            cwd=wf,
            env=workflow_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    # 1. the training job dies (OOM killer, preemption): Snakemake survives and reports the failure
    proc = start()
    wait_for(
        lambda: inside_next_epoch(train_log, ck, 0) and trainer_of(proc) is not None,
        proc,
        "the first checkpoint and a progress line of the epoch after it",
    )
    trainer_of(proc).send_signal(signal.SIGKILL)
    out1 = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, out1[-3000:]
    assert not target.exists(), "the kill landed after the run finished: raise `epochs`"
    first = checkpoint_epoch(ck)
    assert 1 <= first < epochs

    # 2. rerun the same target: resumes; this time Snakemake and its job die together (lost node)
    proc = start()
    wait_for(
        lambda: inside_next_epoch(train_log, ck, first),
        proc,
        f"a checkpoint after epoch {first} and a progress line of the epoch after it",
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not target.exists(), "the kill landed after the run finished: raise `epochs`"
    second = checkpoint_epoch(ck)
    assert first < second < epochs

    # 3. a killed Snakemake leaves its lock: `--unlock` (docs/robustness.md), then the same target
    unlock = subprocess.run(
        [*snakemake, "--unlock"],
        cwd=wf,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    final = subprocess.run(
        snakemake, cwd=wf, env=workflow_env(), capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, (final.stdout + final.stderr)[-4000:]
    log = train_log.read_text()
    assert f"resuming {spec.run_id} (train) from epoch {second}" in log

    pd.testing.assert_frame_equal(pd.read_csv(rdir / "history.csv"), ref_hist, check_exact=True)
    state = torch.load(target, weights_only=True)["state_dict"]
    assert state.keys() == ref_state.keys()
    for k in ref_state:
        assert torch.equal(state[k], ref_state[k]), k

    # MLflow: the three attempts logged into ONE run; every epoch is there, with the reference value
    from mlflow.tracking import MlflowClient

    client = MlflowClient(C.tracking_uri(cfg))
    exp = client.get_experiment_by_name("salience-chest")
    runs = client.search_runs([exp.experiment_id])
    assert [r.data.tags["salience.run_id"] for r in runs] == [spec.run_id]
    hist = client.get_metric_history(runs[0].info.run_id, "val_auroc")
    by_step: dict[int, set[float]] = {}
    for m in hist:
        by_step.setdefault(m.step, set()).add(m.value)
    assert sorted(by_step) == list(range(1, epochs + 1))
    for step, values in by_step.items():  # an epoch redone after a kill logs the same value again
        assert all(v == pytest.approx(ref_hist["val_auroc"].iloc[step - 1]) for v in values), (
            step,
            values,
        )


# ------------------------------------------------------------------ killed evaluation/aggregation
def tiled_prepared(src: Path, dst: Path, n_test: int) -> Path:
    """A prepared dataset whose test split has n_test rows, made by repeating `src`'s test rows
    (train and val unchanged): a big test split in a second."""
    dst.mkdir(parents=True)
    index = pd.read_csv(src / "index.csv", keep_default_na=False)
    split = index["split"].to_numpy()
    test = np.flatnonzero(split == "test")
    pick = np.concatenate([np.flatnonzero(split != "test"), np.resize(test, n_test)])
    index.iloc[pick].to_csv(dst / "index.csv", index=False)
    for name in ("images.npy", "maps.npy", "maps_cam4.npy"):
        np.save(dst / name, np.load(src / name)[pick])
    meta = json.loads((src / "meta.json").read_text())
    files = {
        name: {
            "bytes": (dst / name).stat().st_size,
            "sha256": hashlib.sha256((dst / name).read_bytes()).hexdigest(),
        }
        for name in ("index.csv", "images.npy", "maps.npy", "maps_cam4.npy")
    }
    (dst / "meta.json").write_text(json.dumps({**meta, "n": int(len(pick)), "files": files}))
    return dst


def mapped(proc: subprocess.Popen, name: str) -> bool:
    try:
        return name in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.integration
def test_killed_evaluation_leaves_no_output(tmp_path, tiny_data_dir):
    """SIGKILL `evaluate --run-id` while it scores a 3000-image test split: neither scores.csv nor
    metrics.json exists under its final name (Snakemake's and DVC's outputs); the rerun writes both."""
    big = tmp_path / "bigdata"
    tiled_prepared(tiny_data_dir / "prepared" / "tiny", big / "prepared" / "tiny", 3000)
    cfg = tiny_config_on(tmp_path, big, methods=["xent"], epochs=1, eval_batch_size=2)
    spec = C.RunSpec("tiny", "all", "smallcnn", "xent", "base", 0)
    rdir = C.run_dir(cfg, spec)
    small = tiny_config_on(tmp_path / "train", tiny_data_dir, methods=["xent"], epochs=1)
    torch.set_num_threads(1)
    trained = train(small, spec)
    rdir.mkdir(parents=True)
    for name in ("model.pt", "run.json", "history.csv"):
        shutil.copy(trained / name, rdir / name)
    cmd = salience_argv(
        "evaluate", "--config", str(write_config(cfg)), "--run-id", spec.run_id, "--no-mlflow"
    )
    before = sorted(p.name for p in rdir.iterdir())

    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=workflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: mapped(proc, "images.npy"), proc, "the test split being opened")
    time.sleep(0.5)
    assert proc.poll() is None, "evaluation finished before the kill: enlarge the split"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    left = sorted(p.name for p in rdir.iterdir())
    assert [n for n in left if not n.startswith(".tmp-")] == before, left

    res = subprocess.run(
        cmd, cwd=ROOT, env=workflow_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(pd.read_csv(rdir / "scores.csv")) == 3000
    m = json.loads((rdir / "metrics.json").read_text())
    assert m["run_id"] == spec.run_id and m["epochs"] == 1
    assert not [p for p in rdir.iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture(scope="module")
def aggregate_kills(
    tmp_path_factory, tiny_data_dir
) -> tuple[Path, list[tuple[float, bool, list[str], Path]]]:
    """`aggregate` over 200 runs: one uninterrupted (the reference) and three SIGKILLed at
    +0, +0.3 and +0.9 s after it starts reading the run folders."""
    tmp = tmp_path_factory.mktemp("aggregate")
    spec = C.RunSpec("tiny", "all", "smallcnn", "xent", "base", 0)
    cfg = tiny_config_on(tmp / "one", tiny_data_dir, methods=["xent"], epochs=1)
    torch.set_num_threads(1)
    out = train(cfg, spec)
    from salience.evaluation.evaluate import evaluate_run

    evaluate_run(cfg, spec)
    root = tmp / "runs"
    for i in range(200):
        d = root / f"tiny/all/smallcnn/xent/base/seed{i}"
        d.mkdir(parents=True)
        for name in ("scores.csv", "metrics.json"):
            shutil.copy(out / name, d / name)
        meta = json.loads((out / "run.json").read_text())
        (d / "run.json").write_text(
            json.dumps({**meta, "seed": i, "run_id": f"tiny/all/smallcnn/xent/base/seed{i}"})
        )

    def command(dest: Path) -> list[str]:
        return salience_argv(
            "aggregate",
            "--runs-root",
            str(root),
            "--out-runs",
            str(dest / "runs.csv"),
            "--out-roc",
            str(dest / "roc.csv"),
        )

    ref = tmp / "ref"
    res = subprocess.run(
        command(ref), cwd=ROOT, env=workflow_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]

    def reading(proc: subprocess.Popen) -> bool:
        try:
            return any(str(root) in f.path for f in psutil.Process(proc.pid).open_files())
        except psutil.Error:
            return False

    outcomes = []
    for delay in (0.0, 0.3, 0.9):
        dest = tmp / f"killed-{delay}"
        dest.mkdir()
        proc = subprocess.Popen(
            command(dest),
            cwd=ROOT,
            env=workflow_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda proc=proc: reading(proc), proc, "aggregate reading the runs")
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        final = sorted(p.name for p in dest.iterdir() if not p.name.startswith(".tmp-"))
        outcomes.append((delay, finished, final, dest))
    return ref, outcomes


@pytest.mark.integration
def test_killed_aggregation_never_leaves_a_partial_file(aggregate_kills):
    """Whatever a killed `aggregate` left under a final name is complete (byte-identical to the
    uninterrupted run's), never a torn file. (A killed job's outputs are then incomplete to
    Snakemake, which deletes them or, when it died too, reruns the job: --rerun-incomplete.)"""
    ref, outcomes = aggregate_kills
    assert any(not finished for _, finished, _, _ in outcomes), "every kill came too late: add runs"
    for delay, _, final, dest in outcomes:
        for name in final:
            assert (dest / name).read_bytes() == (ref / name).read_bytes(), (
                f"{name} is partial (kill at +{delay}s)"
            )


@pytest.mark.integration
def test_killed_aggregation_leaves_no_output_under_final_names(aggregate_kills):
    """Both outputs or neither: a killed aggregation never leaves runs.csv without roc.csv (a kill
    after both were written, while the interpreter exits, leaves both)."""
    _, outcomes = aggregate_kills
    for delay, _, final, _ in outcomes:
        assert final in ([], ["roc.csv", "runs.csv"]), f"kill at +{delay}s left only {final}"


# ------------------------------------------------------------------------- concurrent tracking
@pytest.mark.integration
def test_eight_concurrent_jobs_share_one_mlflow_store(tmp_path, tiny_data_dir):
    """8 `train` subprocesses at once on one SQLite store, then 8 `evaluate`: every run, metric
    and artefact is there (lock contention is serialised by a file lock and retried, never lost)."""
    from mlflow.tracking import MlflowClient

    cfg = tiny_config_on(tmp_path, tiny_data_dir, methods=["xent", "cyborg"], epochs=2)
    cfg["experiments"]["main"]["seeds"] = [0, 1, 2, 3]
    cfg_path = write_config(cfg)
    specs = study.expand_runs(cfg)
    assert len(specs) == 8
    uri = C.tracking_uri(cfg)
    assert (
        uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists()
    )  # created by the racers

    def all_at_once(command: str) -> None:
        procs = [
            subprocess.Popen(
                salience_argv(command, "--config", str(cfg_path), "--run-id", s.run_id),
                cwd=ROOT,
                env=workflow_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for s in specs
        ]
        errors = [(s.run_id, p.communicate(timeout=600)[1]) for s, p in zip(specs, procs)]
        bad = [(r, e[-2000:]) for (r, e), p in zip(errors, procs) if p.returncode != 0]
        assert not bad, bad

    all_at_once("train")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("salience-chest")
    runs = {r.data.tags["salience.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == sorted(s.run_id for s in specs)
    for s in specs:
        run = runs[s.run_id]
        hist = pd.read_csv(C.run_dir(cfg, s) / "history.csv")
        for key in ("val_auroc", "train_loss", "lr"):
            logged = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in logged) == [1, 2], (s.run_id, key)
            assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(
                hist[key].tolist()
            )
        assert run.data.params["method"] == s.method and run.data.params["seed"] == str(s.seed)
        assert {"best_val_auroc", "best_epoch"} <= set(run.data.metrics)

    all_at_once("evaluate")
    runs = {r.data.tags["salience.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == sorted(s.run_id for s in specs)  # evaluate re-opened each run, made none
    for s in specs:
        run = runs[s.run_id]
        metrics = json.loads((C.run_dir(cfg, s) / "metrics.json").read_text())
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test_auroc_all"] == pytest.approx(metrics["auroc"]["all"])
        assert run.data.metrics["test_auroc_sigmoid_all"] == pytest.approx(
            metrics["auroc_sigmoid"]["all"]
        )
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model.pt", "scores.csv", "metrics.json", "history.csv", "run.json"} <= arts, (
            s.run_id,
            arts,
        )
