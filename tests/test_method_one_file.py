"""Issue 11.4: a new method is one file with a display label. Written into a copy of the
repository's src/salience/methods/ and nothing else edited, it is validated against its declared
settings, trains through a real (tiny) Snakemake study and appears in the aggregate runs.csv and
in the overview table under its label."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from _support import copy_repo, run, tiny_config, tool_bin, workflow_env, write_config

pytestmark = pytest.mark.integration

TOY = '''"""Toy method (test): weighted cross-entropy."""

from salience.methods.base import METHODS, LossOutput, Method, cross_entropy
from salience.methods.settings import Setting


@METHODS.register("toy")
class Toy(Method):
    label = "Toy Salience"
    uses_maps = False
    settings = {"weight": Setting(1.0, "number", low=0, doc="weight of cross-entropy")}

    def loss(self, model, batch, stage="train"):
        logits = model(batch["image"])
        ce = self.params["weight"] * cross_entropy(logits, batch["label"])
        return LossOutput(total=ce, parts={"ce": ce}, logits=logits)
'''


def _study(tmp_path, weight):
    root = copy_repo(tmp_path / "repo")
    (root / "src" / "salience" / "methods" / "toy.py").write_text(TOY)
    cfg = tiny_config(root / "study", methods=["xent"], epochs=1)  # validated here, without toy
    cfg["experiments"]["main"]["methods"] = ["xent", "toy"]
    cfg["methods"] = {"toy": {"weight": weight}}
    return root, write_config(cfg)


def test_a_one_file_method_trains_and_reaches_the_tables(tmp_path):
    root, cfg = _study(tmp_path, 0.5)
    snakemake = str(tool_bin() / "snakemake")
    results = root / "study" / "results"
    run([snakemake, str(results / "tables"), "--cores", "2", "--configfile", str(cfg)], root, 600)

    with open(results / "aggregate" / "runs.csv", newline="") as fh:
        methods = {row["method"] for row in csv.DictReader(fh)}
    assert methods == {"xent", "toy"}
    overview = (results / "tables" / "overview.csv").read_text()
    assert "Toy Salience" in overview and "Baseline (Xent)" in overview
    run_json = json.loads((results / "runs/tiny/all/smallcnn/toy/base/seed0/run.json").read_text())
    assert run_json["method_params"] == {"weight": 0.5}  # the config's override reached the run


def test_a_one_file_method_checks_its_declared_settings(tmp_path):
    root, cfg = _study(tmp_path, -1)
    res = subprocess.run(
        [sys.executable, "-m", "salience", "runs", "--config", str(cfg)],
        cwd=root,
        env=workflow_env(root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .endswith("methods.toy.weight: must be a number >= 0, got -1")
    ), res.stderr
