"""The one copy of every helper the tests share (fixtures live in conftest.py).

Real components only: PNGs are generated and prepared by the package itself, subprocesses run the
project's own tools (`salience`, `snakemake`, `dvc`, `mlflow`) from the test session's virtualenv.
Sections: paths and environments, subprocesses, repository copies, servers, configs and data, CSV
files, waiting on a running process, LaTeX, the torch hub cache, and the fast-tier guard.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from salience.study import validate

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT
TEST_CONFIG = ".test/config.yaml"
TINY_GEN = {"seed": 5, "image_size": 32, "n_train": 48, "n_val": 24, "n_test": 32}


# ------------------------------------------------------------------------ paths and environments
def tool_bin() -> Path:
    """Folder holding snakemake, dvc, mlflow and the interpreter of this test session."""
    venv = REPO / ".venv" / "bin"
    return venv if (venv / "snakemake").exists() else Path(sys.executable).parent


def workflow_env(root: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for workflow subprocesses: the project's tools first on PATH, the package of
    `root` (a repository copy) importable, unbuffered output (tests poll logs), and no tracking URI
    inherited from the caller, so runs land in the config's own store. `extra` is added last."""
    env = dict(os.environ)
    env["PATH"] = f"{tool_bin()}{os.pathsep}{env.get('PATH', '')}"
    if root is not None:
        env["PYTHONPATH"] = str(root / "src")
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------- subprocesses
def salience_argv(*args: str) -> list[str]:
    """`python -m salience ARGS` with this session's interpreter."""
    return [sys.executable, "-m", "salience", *args]


def snakemake_argv(directory: Path, configfile: Path, *targets: str, cores: int = 1) -> list[str]:
    """`snakemake TARGETS` of this repository's Snakefile, run in `directory` (another folder)."""
    return [str(tool_bin() / "snakemake"), *targets, "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(directory), "--cores", str(cores),
            "--configfile", str(configfile)]  # fmt: skip


def run(
    cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the end of its output (and of failed job logs)."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env or workflow_env(cwd), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode} in {cwd}:\n{tail}")
    return proc


def run_cli(
    args: list[str], check: bool = True, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    """`python -m salience ARGS` in a subprocess (cwd: the repository unless `cwd=` is given)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        salience_argv(*args),
        capture_output=True,
        text=True,
        env=full_env,
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"salience {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def data_cli(argv: list[str]) -> int:
    """The data subcommands (`generate`, `prepare`, `import` ...) in process; returns the exit code."""
    import argparse

    from salience.data.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def git(root: Path, *args: str) -> str:
    """`git ARGS` in `root` under a throwaway author identity; returns its stdout."""
    ident = ["-c", "user.name=salience-test", "-c", "user.email=test@localhost"]
    return run(["git", *ident, *args], root, timeout=60).stdout


def dvc(root: Path, *args: str, timeout: float = 900) -> str:
    """`dvc ARGS` in `root` (no analytics); returns its output, raises with it on failure."""
    env = workflow_env(root, DVC_NO_ANALYTICS="1")
    proc = run([str(tool_bin() / "dvc"), *args], root, timeout=timeout, env=env)
    return proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- repository copies
def repo_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore (the working tree as a commit would
    hold it)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    return sorted({f for f in out.decode().split("\0") if f})


def copy_repo(dest: Path) -> Path:
    """Copy the working tree (see `repo_files`) into `dest`, keeping symlinks (profiles/)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in repo_files():
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree but still in the index
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        elif src.is_file():
            shutil.copy2(src, target)
    return dest


# --------------------------------------------------------------------------------------- servers
def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, base: str, log: Path, limit: float = 90) -> float:
    """Poll an MLflow server's /health until it answers OK (no fixed sleep); fail with the end
    of its log when it exits or `limit` seconds pass. Returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:  # noqa: S310
                if resp.read().strip() == b"OK":
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert proc.poll() is None, f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() - t0 < limit, (
            f"no /health after {limit} s:\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.2)


def post_json(url: str, body: dict, timeout: float = 10) -> dict:
    """POST `body` as JSON to a local test server; the decoded JSON answer."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - local test server
        return json.loads(resp.read())


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a server started with `start_new_session=True`: SIGTERM to its process group (its
    workers too, even when the leader has exited), then SIGKILL when the leader has not exited
    after `timeout` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # the whole group is gone
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ----------------------------------------------------------------------------- configs and data
def tiny_config(
    tmp: Path,
    *,
    methods: list[str] | None = None,
    epochs: int = 2,
    task: str = "chest",
    extra: dict | None = None,
    **train,
) -> dict:
    """A validated config with one tiny generated dataset `tiny` under tmp/data, results under tmp/results."""
    ds = {
        "task": task,
        "source": "generated",
        "image_size": 32,
        "cam_grids": [4],
        "generator": dict(TINY_GEN),
    }
    if task == "iris":
        ds.update(folds="leave_one_subset_out", holdout_subsets=["printouts"])
    cfg = {
        "data_dir": str(tmp / "data"),
        "results_dir": str(tmp / "results"),
        "datasets": {"tiny": ds},
        "train": {
            "epochs": epochs,
            "batch_size": 8,
            "eval_batch_size": 16,
            "lr": 0.01,
            "threads": 1,
            **train,
        },
        "model": {"weights": "none"},
        "experiments": {
            "main": {
                "datasets": ["tiny"],
                "backbones": ["smallcnn"],
                "methods": methods or ["xent"],
                "seeds": [0],
            }
        },
        **(extra or {}),
    }
    return validate(cfg)


def tiny_config_on(tmp: Path, data_dir: Path, **kw) -> dict:
    """`tiny_config(tmp, **kw)` reading its data from an existing `data_dir` (e.g. the session's
    shared tiny dataset, conftest.shared_tiny_root), results still under tmp/results."""
    cfg = tiny_config(tmp, **kw)
    cfg["data_dir"] = str(data_dir)
    return cfg


def prepare_tiny(cfg: dict, dataset: str = "tiny") -> Path:
    """Generate and prepare `dataset` through the CLI (the path users take)."""
    from salience.config import prepared_dir

    cfg_path = write_config(cfg)
    for cmd in ("generate", "prepare"):
        run_cli([cmd, "--config", str(cfg_path), "--dataset", dataset])
    return prepared_dir(cfg, dataset)


def write_config(cfg: dict) -> Path:
    """Write `cfg` as config.yaml beside its results folder; returns the path."""
    import yaml

    path = Path(cfg["results_dir"]).parent / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def prepare_fails(ds: Path, *parts: str, size: int = 16) -> str:
    """`prepare` of `ds`/manifest.csv must fail with a one-line DataError containing `parts` and
    leave nothing behind (no output folder, no .tmp-/.old- sibling). Returns the message."""
    from salience.data.prepare import prepare
    from salience.errors import DataError

    out = ds.parent / "prepared"
    with pytest.raises(DataError) as exc:
        prepare(ds / "manifest.csv", out, size, [4])
    msg = str(exc.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, (p, msg)
    assert not out.exists()
    assert not [p for p in ds.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    return msg


# ------------------------------------------------------------------------------------- CSV files
def rows_of(ds: Path) -> list[list[str]]:
    """The rows of `ds`/manifest.csv (header included)."""
    with open(ds / "manifest.csv", newline="") as fh:
        return list(csv.reader(fh))


def write_rows(ds: Path, rows: list[list[str]]) -> None:
    """Write `rows` as `ds`/manifest.csv."""
    with open(ds / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def csv_dicts(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts (strings, nothing parsed)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------- waiting on a process
def wait_for(
    predicate: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 300
) -> None:
    """Poll `predicate` until it holds; fail with the process's output if it exits first, or
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(
                f"process ended (exit {proc.returncode}) before {what}:\n{out[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def checkpoint_epoch(path: Path) -> int:
    """The last finished epoch recorded in a run's checkpoint.pt (0 while none is readable: not
    written yet, or caught mid-rename)."""
    import torch

    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


# ----------------------------------------------------------------------------------------- LaTeX
def compile_latex(body: str, folder: Path) -> Path:
    """Compile `body` (booktabs tables) in an article with pdflatex; returns the PDF. A missing
    pdflatex fails the test with how to install it (.ci/sysdeps.sh)."""
    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex not found: run `bash .ci/sysdeps.sh` (or `make sysdeps`) as root")
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
    (folder / "t.tex").write_text(doc + body + "\n\\end{document}\n")
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout[-2000:]
    return folder / "t.pdf"


# ------------------------------------------------------------------------------ torch hub cache
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under tmp_path/torch (TORCH_HOME, so subprocesses see it too);
    returns its checkpoints folder."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # set_dir() would override TORCH_HOME
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    return ckpt


# ------------------------------------------------------------------------------ fast-tier guard
# What makes a test an integration test (README "Tests"): it starts a workflow tool or a server.
# conftest.py refuses these commands inside any test not marked `integration`, so the fast tier
# (`make test-fast`, `pytest -m "not integration"`) cannot silently grow a workflow run.
_INTEGRATION = re.compile(
    r"(?:^|[\s/])(?:snakemake|sbatch|srun|salloc|slurmctld|slurmd|munged)(?:\s|$)"
    r"|(?:^|[\s/])mlflow\s+(?:server|ui)\b"
    r"|(?:^|[\s/])salience\s+ui\b"
    r"|(?:^|[\s/])dvc\s+(?:repro|exp)\b"
)


class FastTierViolation(AssertionError):
    """A test outside the integration tier started a workflow tool or a server."""


def integration_command(args: str | bytes | Sequence) -> str | None:
    """The part of a command line that needs the integration tier (Snakemake, SLURM, an MLflow
    server, `dvc repro`), or None. `args` as subprocess.Popen takes it, shell strings included."""
    if isinstance(args, (str, bytes, os.PathLike)):
        args = [args]
    line = " ".join(os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in args)
    found = _INTEGRATION.search(line)
    return found.group(0).strip().lstrip("/") if found else None


fast_test: list[str] = []  # node id of the running test while it is in the fast tier (conftest)
violations: list[str] = []  # what the guard refused, until conftest fails the test at teardown


def fast_tier_guard(event: str, args: tuple) -> None:
    """Audit hook (sys.addaudithook, installed by conftest.py): inside a fast-tier test, refuse a
    subprocess that needs the integration tier, naming the test and the marker to add."""
    if event != "subprocess.Popen" or not fast_test:
        return
    found = integration_command(args[1])
    if found is not None:
        msg = (
            f"{fast_test[0]} starts `{found}` but is not marked integration: add "
            "`pytestmark = pytest.mark.integration` (or @pytest.mark.integration) to it"
        )
        violations.append(msg)
        raise FastTierViolation(msg)
