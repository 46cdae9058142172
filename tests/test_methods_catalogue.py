"""The method catalogue: a torch-free cache of the registry (src/salience/methods/catalogue.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from _support import run_cli

from salience.methods import catalogue
from salience.methods.settings import Setting


def test_committed_catalogue_is_current():
    res = run_cli(["methods", "--check-catalogue"])
    assert "current" in res.stdout


def test_catalogue_loads_without_torch_and_equals_the_registry():
    code = (
        "import sys; from salience.methods import catalogue as c; m = c.load(); "
        "print(len(m), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, torch_loaded = out.stdout.split()
    assert torch_loaded == "False"
    assert catalogue.load() == catalogue.from_registry()
    assert int(n) == len(catalogue.from_registry()) >= 12


def test_a_stale_catalogue_falls_back_to_the_registry(tmp_path, monkeypatch):
    stale = json.loads(catalogue.CATALOGUE_PATH.read_text())
    stale["sources_sha256"] = "0" * 64
    stale["methods"] = {"only_this": stale["methods"]["xent"]}
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(stale))
    monkeypatch.setattr(catalogue, "CATALOGUE_PATH", path)
    catalogue.load.cache_clear()
    try:
        assert "only_this" not in catalogue.load() and "xent" in catalogue.load()
    finally:
        catalogue.load.cache_clear()


def test_settings_round_trip_and_one_line_errors():
    s = Setting(7, "integer", low=1, odd=True)
    assert Setting.from_json(s.to_json()) == s
    assert s.problem(7) is None
    assert s.problem(4) == "must be an odd integer >= 1, got 4"
    assert (
        Setting(0.5, "number", 0, 1).problem(float("nan")) == "must be a number in [0, 1], got nan"
    )


def test_methods_help_has_a_description():
    """`methods --help` printed only usage and options; it now says what the command does."""
    out = run_cli(["methods", "--help"]).stdout
    assert "List the registered training methods" in out
    assert "--write-catalogue rewrites" in " ".join(out.split())
