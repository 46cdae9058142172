"""Shared fixtures (helpers are in _support.py) and the two test tiers.

Tiers (README "Tests"): tests marked `integration` start a workflow tool or a server (Snakemake,
SLURM, an MLflow server, `dvc repro`) or are too heavy for the inner loop; everything else is the
fast tier, `make test-fast` (`pytest -m "not integration"`). `make test` runs both. An audit hook
refuses every such command inside a test of the fast tier, so a misfiled test fails instead of
slowing the fast tier down (tests/test_tiers.py shows it does).

The expensive fixture is `e2e_run`: one real `snakemake --cores 2 --configfile .test/config.yaml`
run in a temporary copy of the repository, ending with the HTML report. It is session-scoped, so
the end-to-end, report and MLflow tests share a single run.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import _support
import pytest
from _support import (
    TEST_CONFIG,
    copy_repo,
    prepare_tiny,
    run,
    tiny_config,
    tool_bin,
)

from salience.data.generate import generate

# ------------------------------------------------------------------------------ fast-tier guard
sys.addaudithook(_support.fast_tier_guard)  # process-wide; acts only while a fast test runs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("integration") is None:
        _support.fast_test[:] = [item.nodeid]
    try:
        yield
    finally:
        _support.fast_test.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _support.violations:
        if report.passed:  # the test caught FastTierViolation itself: fail it all the same
            report.outcome = "failed"
            report.longrepr = "\n".join(_support.violations)
        _support.violations.clear()


# -------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def shared_tiny_root(tmp_path_factory) -> Path:
    """One tiny generated + prepared dataset (the `tiny_config` dataset: data/raw/tiny and
    data/prepared/tiny under the returned folder), made through the CLI once per session (~10 s of
    CPU). Tests must treat it as read-only (copy before changing anything)."""
    root = tmp_path_factory.mktemp("shared-tiny")
    prepare_tiny(tiny_config(root))
    return root


@pytest.fixture(scope="session")
def tiny_data_dir(shared_tiny_root) -> Path:
    """The data_dir of `shared_tiny_root` (read-only; see `_support.tiny_config_on`)."""
    return shared_tiny_root / "data"


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """A small generated face dataset (20 px, 8/4/12 rows, PNG images and maps, manifest.csv),
    read-only; a module may override `base` with its own dataset (test_manifest: iris)."""
    root = tmp_path_factory.mktemp("base") / "ds"
    generate("face", root, seed=0, image_size=20, n_train=8, n_val=4, n_test=12)
    return root


@pytest.fixture
def ds(base: Path, tmp_path: Path) -> Path:
    """A writable copy of `base` under tmp_path/ds."""
    dst = tmp_path / "ds"
    shutil.copytree(base, dst)
    return dst


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
