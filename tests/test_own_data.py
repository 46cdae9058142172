"""From a fresh clone to one's own study (issue 16 §4): Snakemake works without `.venv` activated,
and the README's "Your own data" commands run verbatim in a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _support import REPO, copy_repo, free_port, post_json, stop_group, tool_bin, wait_healthy
from PIL import Image

pytestmark = pytest.mark.integration


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


# ------------------------------------------------------------------ README "Your own data", verbatim
README_SECTION = "## Your own data"


def readme_blocks(readme: Path) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block of the README's "Your own data" section."""
    text = readme.read_text()
    start = text.index(README_SECTION + "\n")
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```(\w+)\n(.*?)^```", section, flags=re.M | re.S)


def _own_images(root: Path) -> None:
    """What a user brings: real PNG images and greyscale maps under data/own/, listed in a CSV in
    the 4-column layout with relative paths (the README's `labels.csv`)."""
    rng = np.random.default_rng(1)
    lines = ["split,truth,img_path,saliency_path"]
    for split, n in (("train", 16), ("val", 8), ("test", 8)):
        for i in range(n):
            label = i % 2
            img = rng.integers(0, 120, (40, 40, 3), dtype=np.uint8)
            if label:
                img[10:30, 10:30] += 100  # something to learn
            sal = np.zeros((40, 40), np.uint8)
            sal[8:32, 8:32] = 255
            name = f"{split}_{i:02d}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            (root / "maps").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "images" / name)
            Image.fromarray(sal).save(root / "maps" / name)
            truth = ("normal", "abnormal")[label]
            lines.append(f"{split},{truth},images/{name},maps/{name}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def test_readme_own_data_commands_run_verbatim(tmp_path):
    blocks = readme_blocks(REPO / "README.md")
    assert [lang for lang, _ in blocks] == ["bash", "yaml", "bash"], blocks
    root = copy_repo(tmp_path / "clone")
    # the set-up commands' .venv (a fresh clone gets it from `make demo` / `make test`)
    if not (root / ".venv").exists():
        os.symlink(os.path.realpath(REPO / ".venv"), root / ".venv")
    _own_images(root / "data" / "own")
    env = _bare_env(root)

    config_text = blocks[1][1]
    first = config_text.splitlines()[0]
    assert first.startswith("# config/"), first
    (root / first[2:].strip()).write_text(config_text)

    commands = [line for _, body in (blocks[0], blocks[2]) for line in body.splitlines()]
    commands = [c.strip() for c in commands if c.strip() and not c.strip().startswith("#")]
    ui = [c for c in commands if c.startswith("python -m salience ui")]
    assert len(ui) == 1 and commands[-1] == ui[0], commands
    script = "set -eo pipefail\nset -x\n" + "\n".join(commands[:-1]) + "\n"
    proc = subprocess.run(
        ["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    results = root / "results" / "own"
    assert (root / "data" / "own" / "manifest.csv").is_file()
    assert json.loads((root / "data" / "prepared" / "own" / "meta.json").read_text())["n"] == 32
    runs = ["own/all/smallcnn/xent/base/seed0", "own/all/smallcnn/cyborg/base/seed0"]
    for run in runs:
        metrics = json.loads((results / "runs" / run / "metrics.json").read_text())
        assert 0.0 <= metrics["auroc"]["all"] <= 1.0, metrics
    assert list((results / "tables").glob("*.csv")), sorted(results.rglob("*"))
    assert (results / "report.html").stat().st_size > 10_000

    # the last command serves the MLflow UI until stopped: start it, find both runs, stop it
    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as fh:
        server = subprocess.Popen(
            ["bash", "-c", f"source .venv/bin/activate\n{ui[0]}"],
            cwd=root,
            env={**env, "MLFLOW_PORT": str(port)},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(server, base, log)
        found = post_json(
            f"{base}/api/2.0/mlflow/runs/search",
            {"experiment_ids": ["0", "1", "2", "3"], "max_results": 50},
        ).get("runs", [])
        names = sorted(
            {t["key"]: t["value"] for t in r["data"]["tags"]}["salience.run_id"] for r in found
        )
        assert names == sorted(runs), found
        assert {r["info"]["status"] for r in found} == {"FINISHED"}
    finally:
        stop_group(server)
