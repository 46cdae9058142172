"""Issue 10, items 11–15: names and paths the workflow must survive, batches of one sample on
BatchNorm, one-line errors instead of tracebacks (non-UTF-8 files, full disk, bad run ids, sweep
keys), and MLflow runs that stay one run when a training is killed and rerun.

Real components only: the package's own generated PNG dataset, real subprocesses of
`python -m salience`, a real Snakemake, a real MLflow SQLite store, a real file size limit
(RLIMIT_FSIZE, the kernel's EFBIG, as a full disk's ENOSPC takes the same path) and a real SIGKILL.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _support import (
    ROOT,
    run_cli,
    salience_argv,
    snakemake_argv,
    tiny_config,
    tiny_config_on,
    workflow_env,
    write_config,
)

from salience import config as C
from salience.methods import catalogue

#: the registered methods as a 'choose one of' message lists them (the registry is the one list)
ALL_METHOD_NAMES = ", ".join(catalogue.names())

DOC = ROOT / "docs" / "robustness.md"
RUN = "tiny/all/smallcnn/xent/base/seed0"

# Exact last stderr lines (exit status 2), `<tmp>` = the test's folder; each is in docs/robustness.md.
EXPECT = {
    "subset-plus-in-config": "error: <tmp>/config.yaml: datasets.tiny.holdout_subsets: name 'print+out' may use only letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a folder, a run id part, an MLflow metric name and a shell argument); rename it",
    "dataset-name-with-space": "error: <tmp>/config.yaml: datasets.my data: name 'my data' may use only letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a folder, a run id part, an MLflow metric name and a shell argument); rename it",
    "subset-space-in-manifest": "error: <tmp>/ds/manifest.csv line 4: subset name 'gan 2' may use only letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a folder, a run id part, an MLflow metric name and a shell argument); rename the subset in the manifest",
    "batch-size-1-batchnorm": "error: train.batch_size is 1: tiny/all/resnet18/xent/base/seed0 (train): resnet18/xent has BatchNorm layers, which need two or more samples per training batch; set train.batch_size to 2 or more",
    "batch-size-1-mentor-pretrain": "error: train.batch_size is 1: tiny/all/smallcnn/mentor/base/seed0 (pretrain): smallcnn/mentor has BatchNorm layers, which need two or more samples per training batch; set train.batch_size to 2 or more",
    "utf16-manifest": "error: <tmp>/ds/manifest.csv: UTF-16 text (a spreadsheet's 'Unicode text' export), not a UTF-8 CSV; save it as 'CSV UTF-8 (comma delimited)' and rerun",
    "latin1-import-csv": "error: <tmp>/fourcol.csv line 3: not UTF-8 (byte 0xe9); save the file as 'CSV UTF-8' (or convert it: iconv -f latin1 -t utf-8) and rerun",
    "utf16-config": "error: <tmp>/config.yaml: not UTF-8 text; save the config as UTF-8 and rerun",
    "run-id-seed-not-a-number": "error: run id 'tiny/all/smallcnn/xent/base/seedX': expected dataset/fold/backbone/method/variant/seedN with N a whole number (list the run ids with `python -m salience runs --config CFG`)",
    "evaluate-out-is-a-file": "error: evaluate --out <tmp>/metrics.json: an existing file, not a folder; --out is the folder that receives scores.csv and metrics.json: give a new or existing folder",
    "sweep-key-unknown-method": "error: <tmp>/sweep.yaml: experiments.ablation_tau.key: unknown method 'sagee' (did you mean 'sage'?); choose one of: "
    + ALL_METHOD_NAMES,
    "full-disk-prepare": "error: <tmp>/.tmp-prepared.*/images.npy: File too large (EFBIG); raise the file size limit (`ulimit -f`) or write to another file system, then rerun the same command (nothing half-written was kept)",
    "full-disk-checkpoint": "error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/checkpoint.pt: File too large (EFBIG); raise the file size limit (`ulimit -f`) or write to another file system, then rerun the same command (nothing half-written was kept)",
}


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def one_line(proc: subprocess.CompletedProcess, tmp: Path) -> str:
    """The single `error:` line of a clean failure (exit 2, no traceback), `tmp` written <tmp>."""
    err = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert sum(ln.startswith("error: ") for ln in lines) == 1, err[-3000:]
    line = lines[-1].replace(str(tmp), "<tmp>")
    return re.sub(r"\.tmp-prepared\.[^/]+/", ".tmp-prepared.*/", line)


def raw_copy(shared: Path, tmp: Path) -> Path:
    ds = tmp / "ds"
    shutil.copytree(shared / "data" / "raw" / "tiny", ds)
    return ds


def test_every_message_is_documented():
    doc = DOC.read_text().replace("\\|", "|")
    missing = [k for k, v in EXPECT.items() if v not in doc]
    assert not missing, missing


# ------------------------------------------------------------------------- 11: names and shells
@pytest.mark.parametrize(
    "case", ["subset-plus-in-config", "dataset-name-with-space", "subset-space-in-manifest"]
)
def test_names_outside_the_charset_are_refused_before_anything_is_written(
    case, tmp_path, shared_tiny_root
):
    """A '+' or a space in a subset/fold/dataset name used to pass `prepare` and the config, and
    fail after training (MLflow refuses the metric name) or split a shell argument."""
    cfg = tiny_config_on(tmp_path, shared_tiny_root / "data")
    if case == "subset-space-in-manifest":
        ds = raw_copy(shared_tiny_root, tmp_path)
        lines = (ds / "manifest.csv").read_text().splitlines()
        assert lines[3].endswith(",")  # an unlabelled (bona fide) row: give it a subset
        lines[3] += "gan 2"
        (ds / "manifest.csv").write_text("\n".join(lines) + "\n")
        before = files(tmp_path)
        args = ["prepare", "--manifest", str(ds / "manifest.csv"), "--out", str(tmp_path / "p")]
        proc = run_cli([*args, "--image-size", "32"], check=False)
    else:
        if case == "subset-plus-in-config":
            cfg["datasets"]["tiny"].update(
                folds="leave_one_subset_out", holdout_subsets=["print+out"]
            )
        else:
            cfg["datasets"]["my data"] = cfg["datasets"].pop("tiny")
            cfg["experiments"]["main"]["datasets"] = ["my data"]
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        before = files(tmp_path)
        proc = run_cli(["runs", "--config", str(path)], check=False)
    assert one_line(proc, tmp_path) == EXPECT[case]
    assert files(tmp_path) == before


# ------------------------------------------------------------------ 12: run from another folder
@pytest.mark.integration
def test_workflow_runs_from_another_directory_whose_path_has_a_space(tmp_path):
    """`snakemake --snakefile <repo>/Snakefile --directory <elsewhere>`: the run_list template
    resolves against the workflow, not the working directory (a real job runs), and every path
    in the jobs' shell commands arrives as one argument although the folder has a space."""
    work = tmp_path / "my study"
    cfg = tiny_config(work)
    cfg_path = write_config(cfg)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()

    def snakemake(*targets: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            snakemake_argv(work, cfg_path, *targets),
            cwd=elsewhere,
            env=workflow_env(ROOT),
            capture_output=True,
            text=True,
            timeout=300,
        )

    dry = snakemake("-n", "-p")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    results = cfg["results_dir"]
    cmds = [
        shlex.split(ln.split("Shell command:", 1)[1])
        for ln in (dry.stdout + dry.stderr).splitlines()
        if " -m salience " in ln and "Shell command:" in ln
    ]
    # jobs run the interpreter that runs Snakemake: `<python> -m salience <command> ...`
    assert all(Path(c[0]).parent == Path(sys.executable).parent for c in cmds), cmds
    aggregate = next(c for c in cmds if c[3] == "aggregate")
    assert aggregate[aggregate.index("--out-runs") + 1] == f"{results}/aggregate/runs.csv"
    tables = next(c for c in cmds if c[3] == "tables")
    assert tables[tables.index("--out-dir") + 1] == f"{results}/tables"
    target = f"{results}/aggregate/run-list.txt"
    real = snakemake(target)
    assert real.returncode == 0, (real.stdout + real.stderr)[-4000:]
    assert Path(target).read_text().splitlines()[-1] == RUN
    assert not (elsewhere / "results").exists() and not (elsewhere / ".snakemake").exists()


# ---------------------------------------------------------------------- 13: batches of one sample
@pytest.mark.parametrize(
    "case,backbone,method,stage",
    [
        ("batch-size-1-batchnorm", "resnet18", "xent", "train"),
        ("batch-size-1-mentor-pretrain", "smallcnn", "mentor", "pretrain"),
    ],
)
def test_batch_size_one_on_batchnorm_is_one_line(
    case, backbone, method, stage, tmp_path, shared_tiny_root
):
    """resnet18 at 32 px has a 1×1 last feature map: BatchNorm raised a traceback on a batch of
    one; MENTOR's pretraining decoder (BatchNorm too) normalised each sample by itself."""
    cfg = tiny_config_on(tmp_path, shared_tiny_root / "data", methods=[method], batch_size=1)
    cfg["experiments"]["main"]["backbones"] = [backbone]
    path = write_config(cfg)
    before = files(tmp_path)
    run_id = f"tiny/all/{backbone}/{method}/base/seed0"
    args = ["train", "--config", str(path), "--run-id", run_id, "--stage", stage, "--no-mlflow"]
    assert one_line(run_cli(args, check=False), tmp_path) == EXPECT[case]
    assert files(tmp_path) == before  # not even the run folder


# ----------------------------------------------------------------- 14: one line, not a traceback
@pytest.mark.integration  # ~19 s on the loaded 2-core machine: too heavy for the fast tier
def test_one_line_errors_for_encodings_run_ids_out_and_sweep_keys(tmp_path, shared_tiny_root):
    ds = raw_copy(shared_tiny_root, tmp_path)
    text = (ds / "manifest.csv").read_text()
    (ds / "manifest.csv").write_bytes(text.encode("utf-16"))
    (tmp_path / "fourcol.csv").write_bytes(
        "train,0,a.png,\ntrain,1,b.png,\nval,0,imagés/c.png,\n".encode("latin-1")
    )
    (tmp_path / "metrics.json").write_text("{}\n")  # a file the user already has
    cfg = tiny_config_on(tmp_path, shared_tiny_root / "data")
    cfg_path = write_config(cfg)
    cfg["experiments"]["ablation_tau"] = {
        **cfg["experiments"]["main"],
        "key": "methods.sagee.tau",
        "values": [1],
    }
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cases = {
        "utf16-manifest": ["prepare", "--manifest", str(ds / "manifest.csv")]
        + ["--out", str(tmp_path / "p"), "--image-size", "32"],
        "latin1-import-csv": ["import", "fourcol", "--csv", str(tmp_path / "fourcol.csv")]
        + ["--out", str(tmp_path / "m.csv")],
        "sweep-key-unknown-method": ["runs", "--config", str(sweep)],
        "run-id-seed-not-a-number": ["train", "--config", str(cfg_path)]
        + ["--run-id", RUN.replace("seed0", "seedX"), "--no-mlflow"],
        "evaluate-out-is-a-file": ["evaluate", "--checkpoint", str(tmp_path / "model.pt")]
        + ["--prepared", str(shared_tiny_root / "data" / "prepared" / "tiny")]
        + ["--out", str(tmp_path / "metrics.json")],
    }
    before = files(tmp_path)
    for case, args in cases.items():
        assert one_line(run_cli(args, check=False), tmp_path) == EXPECT[case], case
    assert files(tmp_path) == before
    assert (tmp_path / "metrics.json").read_text() == "{}\n"
    (tmp_path / "config.yaml").write_bytes(cfg_path.read_text().encode("utf-16"))
    proc = run_cli(["runs", "--config", str(tmp_path / "config.yaml")], check=False)
    assert one_line(proc, tmp_path) == EXPECT["utf16-config"]


def limit_file_size(nbytes: int):
    """preexec_fn: a real kernel file size limit (writes past it fail with EFBIG; Python ignores
    SIGXFSZ), the same failure a full disk gives with ENOSPC."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


@pytest.mark.integration  # ~14 s on the loaded 2-core machine: too heavy for the fast tier
def test_full_disk_during_prepare_is_one_line_and_a_rerun_resumes(tmp_path, shared_tiny_root):
    out = tmp_path / "prepared"
    manifest = shared_tiny_root / "data" / "raw" / "tiny" / "manifest.csv"
    args = ["prepare", "--manifest", str(manifest), "--out", str(out), "--image-size", "32"]
    proc = run_cli(args, check=False, preexec_fn=limit_file_size(64 * 1024))
    assert one_line(proc, tmp_path) == EXPECT["full-disk-prepare"]
    assert files(tmp_path) == set()  # no output, no .tmp-* folder
    run_cli(args)  # space freed: the same command succeeds
    assert (out / "meta.json").is_file() and (out / "images.npy").stat().st_size > 64 * 1024


@pytest.mark.integration  # ~14 s on the loaded 2-core machine: too heavy for the fast tier
def test_permission_denied_is_one_line_and_a_rerun_resumes(tmp_path, shared_tiny_root):
    """EACCES for real: the job runs without CAP_DAC_OVERRIDE (root otherwise ignores file modes;
    util-linux's setpriv drops it from the bounding set), so a read-only output folder refuses the
    write. One line naming the folder; once it is writable the same command succeeds."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    manifest = shared_tiny_root / "data" / "raw" / "tiny" / "manifest.csv"
    args = ["prepare", "--manifest", str(manifest), "--out", str(locked / "prepared"),
            "--image-size", "32"]  # fmt: skip
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*drop, sys.executable, "-m", "salience", *args],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    one_line(proc, tmp_path)  # exit 2, one error line, no traceback
    line = proc.stderr.strip().splitlines()[-1].replace(str(tmp_path), "<tmp>")
    assert line.startswith("error: <tmp>/locked/"), line
    assert line.endswith(
        ": Permission denied (EACCES); make it readable/writable for this user, or choose another "
        "folder, then rerun the same command (nothing half-written was kept)"
    ), line
    assert files(locked) == set()
    locked.chmod(0o755)
    run_cli(args)
    assert (locked / "prepared" / "meta.json").is_file()


@pytest.mark.integration  # ~14 s on the loaded 2-core machine: too heavy for the fast tier
def test_full_disk_at_a_checkpoint_write_is_one_line_and_a_rerun_resumes(
    tmp_path, shared_tiny_root
):
    cfg = tiny_config_on(tmp_path, shared_tiny_root / "data", epochs=1)
    path = write_config(cfg)
    args = ["train", "--config", str(path), "--run-id", RUN, "--no-mlflow"]
    proc = run_cli(args, check=False, preexec_fn=limit_file_size(8 * 1024))
    assert one_line(proc, tmp_path) == EXPECT["full-disk-checkpoint"]
    rdir = C.run_dir(cfg, C.RunSpec.from_run_id(RUN))
    assert sorted(p.name for p in rdir.iterdir()) == []  # no checkpoint.pt, no .tmp-*
    run_cli(args)
    assert (rdir / "model.pt").stat().st_size > 8 * 1024 and (rdir / "history.csv").is_file()


# ------------------------------------------------------------------ 15: one MLflow run per run id
def mlflow_runs(cfg: dict, run_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=C.tracking_uri(cfg))
    exp = client.get_experiment_by_name("salience-chest")
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`salience.run_id` = '{run_id}'"
    )


@pytest.mark.integration
def test_kill_before_the_first_checkpoint_then_rerun_keeps_one_mlflow_run(
    tmp_path, shared_tiny_root
):
    """SIGKILL while epoch 1 runs (the MLflow run exists, no checkpoint.pt yet), rerun: the rerun
    finds its MLflow run by the run-id tag and reuses it; one run, FINISHED. Then the run folder
    is lost and the run retrained: still that one run."""
    # resnet18 in batches of 2: epoch 1 lasts long enough (~1 s) to be killed after its first
    # progress line (a quarter of the epoch) and well before its end
    run_id = RUN.replace("smallcnn", "resnet18")
    cfg = tiny_config_on(tmp_path, shared_tiny_root / "data", epochs=1, batch_size=2)
    cfg["experiments"]["main"]["backbones"] = ["resnet18"]
    path = write_config(cfg)
    rdir = C.run_dir(cfg, C.RunSpec.from_run_id(run_id))
    args = ["train", "--config", str(path), "--run-id", run_id, "--evaluate"]
    proc = subprocess.Popen(
        salience_argv(*args),
        cwd=ROOT,
        env=workflow_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # the first progress line: MLflow run created, epoch 1 running
            seen.append(line)
            if re.search(r"train\] epoch 1/1 batch \d+/", line):
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(seen)[-3000:]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not (rdir / "checkpoint.pt").exists()  # killed before the first checkpoint
    (stuck,) = mlflow_runs(cfg, run_id)
    assert stuck.info.status == "RUNNING"
    run_cli(args, env={"MLFLOW_TRACKING_URI": ""})
    (run,) = mlflow_runs(cfg, run_id)
    assert run.info.run_id == stuck.info.run_id and run.info.status == "FINISHED"
    assert "val_auroc" in run.data.metrics
    assert any(k.startswith("test_auroc_") for k in run.data.metrics)
    shutil.rmtree(rdir)  # results lost, store kept: retrain the same run id
    run_cli(args, env={"MLFLOW_TRACKING_URI": ""})
    (again,) = mlflow_runs(cfg, run_id)
    assert again.info.run_id == stuck.info.run_id and again.info.status == "FINISHED"
