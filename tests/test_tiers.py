"""The two test tiers (README "Tests"): the fast tier (`make test-fast`, `-m "not integration"`)
never starts Snakemake, SLURM, an MLflow server or `dvc repro`. conftest.py enforces it with an
audit hook on subprocess.Popen; these tests show the hook is installed and what it recognises."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _support import FastTierViolation, integration_command, salience_argv, tool_bin, violations


@pytest.mark.parametrize(
    "argv",
    [
        [str(tool_bin() / "snakemake"), "-n", "--configfile", ".test/config.yaml"],
        ["snakemake"],
        ["/usr/bin/sbatch", "--wrap", "true"],
        ["srun", "hostname"],
        ["/x/.venv/bin/mlflow", "server", "--port", "5000"],
        ["mlflow", "ui"],
        salience_argv("ui", "--port", "5000"),
        ["/x/.venv/bin/dvc", "repro", "prepare@iris"],
        ["bash", "-c", "set -e\npython -m salience generate\nsnakemake --cores 1"],
        "snakemake --cores 2 --configfile .test/config.yaml",
    ],
)
def test_workflow_tools_and_servers_are_integration(argv):
    assert integration_command(argv) is not None


@pytest.mark.parametrize(
    "argv",
    [
        salience_argv("train", "--config", "c.yaml", "--run-id", "x/all/smallcnn/xent/base/seed0"),
        salience_argv("evaluate", "--snakefile-like", "/tmp/test_snakemake_target0/Snakefile"),
        [str(tool_bin() / "dvc"), "stage", "list", "--name-only"],
        ["dvc", "init", "--no-scm", "-q"],
        ["git", "init", "-q"],
        ["pdflatex", "-interaction=nonstopmode", "t.tex"],
        ["setpriv", "--bounding-set", "-dac_override", "python", "-m", "salience", "prepare"],
    ],
)
def test_unit_commands_stay_in_the_fast_tier(argv):
    assert integration_command(argv) is None


def test_the_guard_stops_snakemake_in_a_fast_test(tmp_path: Path):
    """This test is in the fast tier: starting Snakemake raises before any process starts, and
    would fail the test at teardown even if the test swallowed the exception."""
    with pytest.raises(FastTierViolation, match="test_the_guard_stops_snakemake_in_a_fast_test"):
        subprocess.run([str(tool_bin() / "snakemake"), "--version"], cwd=tmp_path, check=False)
    assert len(violations) == 1 and "not marked integration" in violations[0]
    violations.clear()  # shown; do not fail this test at teardown


@pytest.mark.integration
def test_the_guard_lets_integration_tests_start_snakemake(tmp_path: Path):
    proc = subprocess.run(
        [str(tool_bin() / "snakemake"), "--version"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip()[0].isdigit(), proc.stderr
