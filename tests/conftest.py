"""Shared fixtures of the workflow tests (Snakemake, SLURM, DVC, MLflow UI).

The expensive one is `e2e_run`: one real `snakemake --cores 2 --configfile .test/config.yaml` run in
a temporary copy of the repository, ending with the HTML report. It is session-scoped, so the
end-to-end, report and MLflow tests share a single run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = ".test/config.yaml"


def tool_bin() -> Path:
    """Folder holding snakemake, dvc and the interpreter of this test session."""
    venv = REPO / ".venv" / "bin"
    return venv if (venv / "snakemake").exists() else Path(sys.executable).parent


def workflow_env(root: Path | None = None) -> dict[str, str]:
    """Environment for workflow subprocesses: the project's tools first on PATH, the package of
    `root` (a repository copy) importable, and no tracking URI inherited from the caller, so runs
    land in the config's own store."""
    env = dict(os.environ)
    env["PATH"] = f"{tool_bin()}{os.pathsep}{env.get('PATH', '')}"
    if root is not None:
        env["PYTHONPATH"] = str(root / "src")
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


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


@dataclass
class WorkflowRun:
    root: Path
    config: Path
    seconds: float
    report_seconds: float
    log: str = field(repr=False, default="")

    @property
    def results(self) -> Path:
        return self.root / "results"


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory) -> WorkflowRun:
    """The tiny config run to the end (tables, figures, DD Fig. 1 panels, summary) and the HTML report."""
    root = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    snakemake = str(tool_bin() / "snakemake")
    t0 = time.monotonic()
    proc = run([snakemake, "--cores", "2", "--configfile", TEST_CONFIG], root, timeout=900)
    seconds = time.monotonic() - t0
    t0 = time.monotonic()
    run(
        [snakemake, "--cores", "2", "--configfile", TEST_CONFIG, "--report", "results/report.html"],
        root,
        timeout=300,
    )
    return WorkflowRun(
        root, root / TEST_CONFIG, seconds, time.monotonic() - t0, log=proc.stdout + proc.stderr
    )
