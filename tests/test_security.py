"""Safe loading and safe defaults (issue 6): every tensor file is read with weights_only=True and a
file crafted to run code on load is refused (checkpoints, resume state, backbone weights); the
MLflow UI binds to 127.0.0.1 unless told otherwise; `doctor` reports what a run depends on.

The CLI-level refusals (evaluate --checkpoint, a planted checkpoint.pt, model.weights, symlinks
escaping the data folder) are rows of the bad-input table in test_robustness.py.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch
from _support import ROOT, run_cli, tiny_config, write_config

from salience import checkpoint as ck
from salience import config as C
from salience.errors import CheckpointError

PACKAGE = ROOT / "src" / "salience"


# ------------------------------------------------------------------------------ static checks
def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            )
            owner = (
                f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            )
            yield owner, name, node


def kw(node: ast.Call, name: str):
    for k in node.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def test_every_load_in_the_package_is_weights_only():
    """grep with a parser: torch.load only with weights_only=True, np.load never with
    allow_pickle, and no pickle/joblib/unsafe-YAML/jit loaders at all."""
    found, bad = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for owner, name, node in calls(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if owner == "torch" and name == "load":
                found += 1
                if kw(node, "weights_only") is not True:
                    bad.append(f"{where}: torch.load without weights_only=True")
            elif (
                owner in ("np", "numpy")
                and name == "load"
                and kw(node, "allow_pickle") not in (None, False)
            ):
                bad.append(f"{where}: np.load with allow_pickle")
            elif owner in ("pickle", "cPickle", "joblib", "dill", "cloudpickle") and name in (
                "load",
                "loads",
            ):
                bad.append(f"{where}: {owner}.{name}")
            elif owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                bad.append(f"{where}: yaml.{name} (use yaml.safe_load)")
            elif owner in ("pd", "pandas") and name == "read_pickle":
                bad.append(f"{where}: pandas.read_pickle")
            elif name in ("eval", "exec") and owner == "":
                bad.append(f"{where}: {name}()")
        if "torch.jit.load" in path.read_text():
            bad.append(f"{path.relative_to(ROOT)}: torch.jit.load")
    assert found >= 1  # salience/safeload.py `read`, the one loader (else the check is vacuous)
    assert not bad, bad


# ------------------------------------------------------------------------ crafted files, in process
class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["zip", "legacy-pickle"])
def test_crafted_files_are_refused_by_every_loader(tmp_path, fmt):
    from salience.models.base import build_backbone
    from salience.training.state import Trainable, resume

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"state_dict": {"w": torch.ones(2)}, "meta": {}, "x": Evil(marker)}
    if fmt == "zip":
        torch.save(payload, evil)
    else:  # the pre-1.6 format: a plain pickle stream
        with open(evil, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    with pytest.raises(
        CheckpointError, match="refused: the file contains Python objects that could run code"
    ):
        ck.load(evil)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    with pytest.raises(CheckpointError, match="refused"):
        resume(evil, "fingerprint", Trainable(model, opt, sched))
    with pytest.raises(CheckpointError, match="refused: the file contains Python objects"):
        build_backbone("smallcnn", weights=str(evil))
    assert not marker.exists()


def test_foreign_and_empty_files_are_one_line_errors(tmp_path):
    from salience.training.state import Trainable, resume

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(
        CheckpointError,
        match=r"unreadable or truncated checkpoint \(empty file\); delete it and retrain",
    ):
        ck.load(empty)
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="unreadable or truncated checkpoint"):
        ck.load(text)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="not a resumable checkpoint"):
        resume(tensor, "f", Trainable(model, opt, torch.optim.lr_scheduler.StepLR(opt, 1)))
    bad_meta = tmp_path / "meta.pt"
    torch.save({"state_dict": {}, "meta": [1, 2]}, bad_meta)
    with pytest.raises(CheckpointError, match="'meta' is not a mapping"):
        ck.load(bad_meta)


# ------------------------------------------------------------------------- data folder confinement
def test_symlinks_inside_the_data_folder_are_allowed(tmp_path):
    """Confinement is about where a path ends up: a symlink to a file inside the folder is fine
    (escapes through symlinks are rows of the bad-input table)."""
    from PIL import Image

    from salience.data.manifest import read_manifest

    ds = tmp_path / "ds"
    (ds / "store").mkdir(parents=True)
    rows = ["split,label,image,saliency,subset"]
    for i, split in enumerate(["train", "train", "val", "val", "test", "test"]):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(ds / "store" / f"{i}.png")
        (ds / f"link{i}.png").symlink_to(ds / "store" / f"{i}.png")
        rows.append(f"{split},{i % 2},link{i}.png,,")
    (ds / "manifest.csv").write_text("\n".join(rows) + "\n")
    got = read_manifest(ds / "manifest.csv")
    assert [r.image for r in got] == [f"link{i}.png" for i in range(6)]


# ------------------------------------------------------------------------------------ MLflow UI
def test_mlflow_ui_binds_to_localhost_by_default(tmp_path, monkeypatch, caplog):
    from salience import ui
    from salience.cli import build_parser

    args = build_parser(["ui"]).parse_args(["ui"])
    assert args.host == "127.0.0.1"
    cfg = tiny_config(tmp_path)
    cmd, env = ui.command(cfg, args.host, args.port)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--backend-store-uri") + 1] == C.tracking_uri(cfg)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "0.0.0.0" not in " ".join(cmd)

    launched = []
    monkeypatch.setattr(ui.os, "execve", lambda path, argv, env: launched.append(argv))
    with caplog.at_level("WARNING"):
        ui.serve(cfg)
    assert (
        launched[-1][launched[-1].index("--host") + 1] == "127.0.0.1"
        and "no authentication" not in caplog.text
    )
    with caplog.at_level("WARNING"):
        ui.serve(cfg, host="0.0.0.0")  # only when asked, and with a warning
    assert launched[-1][launched[-1].index("--host") + 1] == "0.0.0.0"
    assert "reachable from other machines, with no authentication" in caplog.text


# ------------------------------------------------------------------------------------ doctor
def test_doctor_reports_versions_device_shim_tracking_and_determinism(tmp_path, monkeypatch):
    import importlib.metadata as md
    import platform

    from salience import _tvshim

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(tmp_path)
    res = run_cli(["doctor", "--config", str(write_config(cfg))], env={"MLFLOW_TRACKING_URI": ""})
    lines = res.stdout.splitlines()
    rows = {ln.split()[0]: ln.split(None, 1)[1] for ln in lines if ln.strip()}
    assert rows["python"].startswith(platform.python_version())
    for pkg in (
        "torch",
        "torchvision",
        "numpy",
        "pandas",
        "scikit-learn",
        "mlflow",
        "snakemake",
        "dvc",
    ):
        try:
            assert rows[pkg] == md.version(pkg), pkg
        except md.PackageNotFoundError:
            assert rows[pkg] == "not installed"
    assert rows["device"].startswith("cuda: " if torch.cuda.is_available() else "cpu only")
    assert "CPU threads" in rows["device"]
    shim = rows["tv"]  # "tv shim  <state> (...)"
    assert shim.startswith("shim") and shim.split()[1] in (
        "not-needed",
        "extension-loaded",
        "schemas-defined",
        "torchvision-missing",
    )
    assert shim.split()[1] == _tvshim.install()  # the same environment as this process
    assert rows["tracking"] == f"uri  {C.tracking_uri(cfg)}"
    assert rows["deterministic"].startswith("yes")


def test_doctor_names_an_explicit_tracking_uri():
    from salience.doctor import report

    lines = report({"results_dir": "results", "tracking_uri": "http://127.0.0.1:5005"})
    assert "tracking uri  http://127.0.0.1:5005" in lines
    assert any(ln.startswith("deterministic ") for ln in lines)
