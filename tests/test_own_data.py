"""From a fresh clone to one's own study (issue 16 §4): Snakemake works without `.venv` activated,
and the README's "Your own data" commands run verbatim in a fresh copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import copy_repo, tool_bin

pytestmark = pytest.mark.slow


def _bare_env(root: Path) -> dict[str, str]:
    """A fresh login shell's environment: no virtualenv on PATH and no `python` at all (Debian
    ships only `python3`, which cannot import the project's stack)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    env["PYTHONPATH"] = str(root / "src")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_snakemake_runs_jobs_without_the_venv_on_path(tmp_path):
    root = copy_repo(tmp_path / "repo")
    env = _bare_env(root)
    assert shutil.which("python", path=env["PATH"]) is None
    snakemake = str(tool_bin() / "snakemake")  # called by path, as `.venv/bin/snakemake`
    proc = subprocess.run(
        [snakemake, "data/raw/iris", "--cores", "1", "--configfile", ".test/config.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = root / "logs" / "generate" / "iris.log"
    detail = proc.stdout[-3000:] + proc.stderr[-3000:] + (log.read_text() if log.exists() else "")
    assert proc.returncode == 0, detail
    assert (root / "data" / "raw" / "iris" / "manifest.csv").is_file(), detail
    assert list((root / "data" / "raw" / "iris").rglob("*.png")), detail
