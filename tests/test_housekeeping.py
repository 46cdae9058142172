"""Housekeeping (issue 11.8): a clone has data/ and results/ with a README each, `make clean-results`
keeps results/README.md, and the workflow files and docs name only config files, make targets and
CLI commands that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# files a reader is told to write (README "Your own data", docs/data.md §6), not repository files
USER_CONFIGS = {"config/own.yaml", "config/mine.yaml"}
NAMING_FILES = [
    "Snakefile",
    "Makefile",
    "README.md",
    "config/README.md",
    "data/README.md",
    "results/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow").rglob("*") if p.is_file()),
]


def _text() -> dict[str, str]:
    return {f: (ROOT / f).read_text() for f in NAMING_FILES if (ROOT / f).is_file()}


def test_a_clone_has_data_and_results_with_a_readme():
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "data/README.md", "results/README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert tracked.returncode == 0, tracked.stderr
    assert "prepared/<dataset>/" in (ROOT / "data" / "README.md").read_text()
    results = (ROOT / "results" / "README.md").read_text()
    for part in ("runs/<dataset>/<fold>/<backbone>/<method>/<variant>/seed<N>/", "aggregate/"):
        assert part in results


def test_clean_results_keeps_the_readme(tmp_path):
    assert shutil.which("make"), "make is part of the documented set-up"
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    res = subprocess.run(["make", "clean-results"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr  # no results/ at all: nothing to do
    (tmp_path / "results" / "runs" / "a").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "a" / "metrics.json").write_text("{}")
    (tmp_path / "results" / "report.html").write_text("<html/>")
    (tmp_path / "results" / ".hidden").write_text("x")
    (tmp_path / "results" / "README.md").write_text("layout")
    (tmp_path / "logs" / "train").mkdir(parents=True)
    (tmp_path / ".snakemake").mkdir()
    res = subprocess.run(["make", "clean-results"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["README.md"]
    assert (tmp_path / "results" / "README.md").read_text() == "layout"
    assert not (tmp_path / "logs").exists() and not (tmp_path / ".snakemake").exists()


def test_named_config_files_exist():
    missing = []
    for name, text in _text().items():
        for path in set(re.findall(r"(?<![\w/.-])((?:config|\.test)/[\w.-]+\.ya?ml)\b", text)):
            if path not in USER_CONFIGS and not (ROOT / path).is_file():
                missing.append(f"{name}: {path}")
        for prof in set(re.findall(r"--(?:workflow-)?profile[ =]+([\w./-]+)", text)):
            if prof.rstrip(".") != "none" and not (ROOT / prof / "config.yaml").is_file():
                missing.append(f"{name}: profile {prof}")
    assert not missing, "named but not in the repository:\n" + "\n".join(sorted(missing))


def test_named_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    missing = [
        f"{name}: make {t}"
        for name, text in _text().items()
        for t in set(re.findall(r"`make ([\w-]+)", text))
        if t not in targets
    ]
    assert not missing, "\n".join(sorted(missing))


def test_named_cli_commands_exist():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    res = subprocess.run(
        [sys.executable, "-m", "salience", "--help"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    commands = set(re.search(r"\{([\w,-]+)\}", res.stdout).group(1).split(","))
    missing = [
        f"{name}: python -m salience {c}"
        for name, text in _text().items()
        for c in set(re.findall(r"python -m salience ([a-z][\w-]*)", text))
        if c not in commands
    ]
    assert not missing, "\n".join(sorted(missing))
