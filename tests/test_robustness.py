"""Bad input, end to end (issue 6): every case of docs/robustness.md is reproduced through
`python -m salience ...` subprocesses. Each must end with exit status 2, exactly one final stderr
line `error: <message>` (no traceback), the message documented in docs/robustness.md, and no
output left under its final name (the folder is listed).

The ~37 CLI subprocesses are independent, so the `outcomes` fixture runs the selected cases two at
a time (both CPU cores) before the parametrized test checks them one by one. Case templates use
`<tmp>` for the case's own temporary folder and `0x…` for memory addresses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from _support import (
    ROOT,
    rows_of,
    salience_argv,
    snakemake_argv,
    tiny_config,
    workflow_env,
    write_rows,
)

from salience import config as C
from salience.methods import catalogue
from salience.training.loop import train

#: the registered methods as a 'choose one of' message lists them (the registry is the one list)
ALL_METHOD_NAMES = ", ".join(catalogue.names())

DOC = ROOT / "docs" / "robustness.md"
RUN_ID = "tiny/all/smallcnn/xent/base/seed0"
SPEC = C.RunSpec.from_run_id(RUN_ID)
MARKER = (
    "pwned"  # a malicious checkpoint creates <tmp>/pwned when unpickled with weights_only=False
)


# ----------------------------------------------------------------------------------- workspace
@dataclass
class Workspace:
    root: Path
    cfg: dict  # validated tiny config (data under root/data)
    raw: Path  # generated dataset: PNG images, PNG maps, manifest.csv
    prepared: Path
    model: Path  # a trained smallcnn/xent model.pt


@pytest.fixture(scope="module")
def ws(tmp_path_factory, shared_tiny_root) -> Workspace:
    shared = shared_tiny_root  # generated + prepared through the CLI
    root = tmp_path_factory.mktemp("robust")
    cfg = tiny_config(root, epochs=1)
    cfg["data_dir"] = str(shared / "data")
    torch.set_num_threads(1)
    out = train(cfg, SPEC)
    return Workspace(
        root,
        cfg,
        shared / "data" / "raw" / "tiny",
        shared / "data" / "prepared" / "tiny",
        out / "model.pt",
    )


@dataclass
class Case:
    id: str
    what: str  # the bad input, as in docs/robustness.md
    build: Callable[[Workspace, Path], list[str]]  # writes the bad input under tmp, returns argv
    expect: str  # the final stderr line, with <tmp> for the case folder
    absent: list[str] = field(default_factory=list)  # outputs (relative to tmp) that must not exist
    xfail: str = ""  # known gap, reported to the owner of the code (docs/robustness.md)


CASES: list[Case] = []


def case(id: str, what: str, expect: str, absent=(), xfail: str = "") -> Callable:
    def deco(fn):
        CASES.append(Case(id, what, fn, expect, list(absent), xfail))
        return fn

    return deco


# ----------------------------------------------------------------------------------- helpers
def copy_raw(ws: Workspace, tmp: Path) -> Path:
    ds = tmp / "ds"
    shutil.copytree(ws.raw, ds)
    return ds


def prepare_argv(tmp: Path) -> list[str]:
    return [
        "prepare",
        "--manifest",
        str(tmp / "ds" / "manifest.csv"),
        "--out",
        str(tmp / "prepared"),
        "--image-size",
        "32",
        "--cam-grids",
        "4",
    ]


def edit_manifest(
    ws: Workspace, tmp: Path, fn: Callable[[list[list[str]], Path], list[list[str]] | None]
) -> list[str]:
    ds = copy_raw(ws, tmp)
    rows = rows_of(ds)
    new = fn(rows, ds)
    write_rows(ds, rows if new is None else new)
    return prepare_argv(tmp)


def write_cfg(
    ws: Workspace, tmp: Path, edit: Callable[[dict], None] | None = None, text: str | None = None
) -> Path:
    """A config for the case: the workspace's data, results under tmp/results (raw YAML: the CLI,
    not this helper, validates it)."""
    cfg = yaml.safe_load(yaml.safe_dump(ws.cfg))
    cfg["results_dir"] = str(tmp / "results")
    if edit is not None:
        edit(cfg)
    path = tmp / "config.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg, sort_keys=False))
    return path


def train_argv(cfg_path: Path, run_id: str = RUN_ID) -> list[str]:
    return ["train", "--config", str(cfg_path), "--run-id", run_id, "--no-mlflow"]


def evaluate_argv(ws: Workspace, tmp: Path, checkpoint: Path) -> list[str]:
    return [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--prepared",
        str(ws.prepared),
        "--out",
        str(tmp / "eval"),
    ]


def run_dir(tmp: Path, run_id: str = RUN_ID) -> Path:
    return tmp / "results" / "runs" / run_id


class Evil:
    """Unpickling this object creates a marker file: a stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_checkpoint(path: Path, marker: Path, ws: Workspace) -> Path:
    good = torch.load(ws.model, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**good, "meta": {**good["meta"], "note": Evil(marker)}}, path)
    return path


def truncated_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


RUN_OUTPUTS = [
    f"results/runs/{RUN_ID}/{f}"
    for f in ("model.pt", "history.csv", "run.json", "scores.csv", "metrics.json")
]


# ----------------------------------------------------------------------------------- the table
# --- manifests, images and maps (`prepare`) ---
@case(
    "truncated-image",
    "PNG image cut in half",
    expect="error: <tmp>/ds/manifest.csv line 5: images/train/train_00003.png: unreadable or truncated image (image file is truncated); re-export the file or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        truncated_copy(ds / rows[4][2], ds / rows[4][2])

    return edit_manifest(ws, tmp, fn)


@case(
    "corrupt-image",
    "image file that is not an image (text bytes)",
    expect="error: <tmp>/ds/manifest.csv line 7: images/train/train_00005.png: unreadable or truncated image (not an image format PIL can identify); re-export the file or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        (ds / rows[6][2]).write_bytes(b"this is not a PNG file\n" * 20)

    return edit_manifest(ws, tmp, fn)


@case(
    "truncated-map",
    "saliency map PNG cut in half",
    expect="error: <tmp>/ds/manifest.csv line 4: maps/train/train_00002.png: unreadable saliency map (image file is truncated); re-export the map or empty the saliency cell",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        truncated_copy(ds / rows[3][3], ds / rows[3][3])

    return edit_manifest(ws, tmp, fn)


@case(
    "wrong-columns",
    "manifest header with other column names (class, path)",
    expect="error: <tmp>/ds/manifest.csv line 1: header lacks column(s) label, image; the header must be split,label,image,saliency,subset",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        rows[0] = ["split", "class", "path", "saliency", "subset"]

    return edit_manifest(ws, tmp, fn)


@case(
    "ragged-row",
    "row with an extra cell (unquoted comma in a path)",
    expect="error: <tmp>/ds/manifest.csv line 8: 6 cells but the header has 5; fix the row (quote commas in paths)",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        rows[7] = rows[7] + ["extra"]

    return edit_manifest(ws, tmp, fn)


@case(
    "label-outside-classes",
    "label 2 (only 0 and 1 exist)",
    expect="error: <tmp>/ds/manifest.csv line 3: images/train/train_00001.png: label '2' is outside the two classes 0 and 1 (1 = attack/synthetic/abnormal); fix the row, or convert class names with `python -m salience import ... --label-map NAME=0|1`, or, for a dataset with more than two classes, declare them (`datasets.<name>.classes` in the config, `prepare --classes a,b,c`)",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        rows[2][1] = "2"

    return edit_manifest(ws, tmp, fn)


@case(
    "unknown-split",
    "split 'valid' instead of 'val'",
    expect="error: <tmp>/ds/manifest.csv line 61: split 'valid' is not one of train, val, test; fix the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        rows[60][0] = "valid"

    return edit_manifest(ws, tmp, fn)


@case(
    "duplicate-row",
    "the same image listed twice",
    expect="error: <tmp>/ds/manifest.csv line 106: images/train/train_00009.png: duplicate image path (also on line 11); remove one of the rows",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        return rows + [rows[10]]

    return edit_manifest(ws, tmp, fn)


@case(
    "path-escapes-dotdot",
    "image path leaving the data folder with ..",
    expect="error: <tmp>/ds/manifest.csv line 2: ../outside.png: path escapes the dataset folder <tmp>/ds (via '..'); move the file inside <tmp>/ds or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        shutil.copy(ds / rows[1][2], tmp / "outside.png")
        rows[1][2] = "../outside.png"

    return edit_manifest(ws, tmp, fn)


@case(
    "path-absolute-outside",
    "absolute image path outside the data folder",
    expect="error: <tmp>/ds/manifest.csv line 2: <tmp>/outside.png: absolute path outside the dataset folder <tmp>/ds; move the file inside <tmp>/ds or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        shutil.copy(ds / rows[1][2], tmp / "outside.png")
        rows[1][2] = str(tmp / "outside.png")

    return edit_manifest(ws, tmp, fn)


@case(
    "symlink-outside",
    "image inside the folder that is a symlink to a file outside it",
    expect="error: <tmp>/ds/manifest.csv line 2: images/link.png: symlink pointing outside the dataset folder <tmp>/ds (to <tmp>/outside.png); move the file inside <tmp>/ds or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        shutil.copy(ds / rows[1][2], tmp / "outside.png")
        (ds / "images" / "link.png").symlink_to(tmp / "outside.png")
        rows[1][2] = "images/link.png"

    return edit_manifest(ws, tmp, fn)


@case(
    "map-symlink-outside",
    "saliency map that is a symlink to a file outside the folder",
    expect="error: <tmp>/ds/manifest.csv line 2: maps/link.png: saliency map: symlink pointing outside the dataset folder <tmp>/ds (to <tmp>/outside-map.png); move the map inside <tmp>/ds or empty the cell",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        shutil.copy(ds / rows[1][3], tmp / "outside-map.png")
        (ds / "maps" / "link.png").symlink_to(tmp / "outside-map.png")
        rows[1][3] = "maps/link.png"

    return edit_manifest(ws, tmp, fn)


@case(
    "symlinked-folder-outside",
    "an images/ folder that is a symlink to a folder outside the data folder",
    expect="error: <tmp>/ds/manifest.csv line 2: images/train/train_00000.png: symlink pointing outside the dataset folder <tmp>/ds (to <tmp>/elsewhere/train/train_00000.png); move the file inside <tmp>/ds or remove the row (and 19 more problems, all logged above)",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        shutil.move(ds / "images", tmp / "elsewhere")
        (ds / "images").symlink_to(tmp / "elsewhere", target_is_directory=True)

    return edit_manifest(ws, tmp, fn)


@case(
    "missing-image",
    "image file that does not exist",
    expect="error: <tmp>/ds/manifest.csv line 10: images/train/train_00008.png: missing image file (no such file under <tmp>/ds); fix the path or remove the row",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        (ds / rows[9][2]).unlink()

    return edit_manifest(ws, tmp, fn)


@case(
    "empty-split",
    "no val rows",
    expect="error: <tmp>/ds/manifest.csv: split 'val' is empty; every dataset needs train, val and test rows (assign some rows to 'val')",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        return [r for r in rows if r[0] != "val"]

    return edit_manifest(ws, tmp, fn)


@case(
    "single-class-split",
    "test rows of label 0 only",
    expect="error: <tmp>/ds/manifest.csv: split 'test' has only label 0 rows; it needs both classes (AUROC is undefined with one class): add label 1 rows to 'test'",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        return [r for r in rows if not (r[0] == "test" and r[1] == "1")]

    return edit_manifest(ws, tmp, fn)


@case(
    "class-missing-from-split",
    "3 classes (prepare --classes normal,chf,pneumonia), no pneumonia rows in test",
    expect="error: <tmp>/ds/manifest.csv: split 'test' has no rows of class 'pneumonia' (label 2); every split needs every class (one-vs-rest AUROC is undefined otherwise): add 'pneumonia' rows to 'test'",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        for i, r in enumerate(rows[1:]):  # label 1 → chf or pneumonia by turns, test: chf only
            if r[1] == "1":
                r[1] = "chf" if r[0] == "test" or i % 2 else "pneumonia"

    return [*edit_manifest(ws, tmp, fn), "--classes", "normal,chf,pneumonia"]


@case(
    "label-not-a-declared-class",
    "label 'copd' with classes normal,chf,pneumonia declared",
    expect="error: <tmp>/ds/manifest.csv line 3: images/train/train_00001.png: label 'copd' is none of the 3 classes normal, chf, pneumonia (or their indices 0..2); fix the row, or the class list (datasets.<name>.classes)",
    absent=["prepared"],
)
def _(ws, tmp):
    def fn(rows, ds):
        rows[2][1] = "copd"

    return [*edit_manifest(ws, tmp, fn), "--classes", "normal,chf,pneumonia"]


# --- configuration (`train --config`) ---
@case(
    "unknown-method",
    "experiments list a method that does not exist",
    expect="error: <tmp>/config.yaml: experiments.main.methods: unknown method 'xnet' (did you mean 'xent'?); choose one of: "
    + ALL_METHOD_NAMES,
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["experiments"]["main"]["methods"] = ["xnet"]

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "unknown-backbone",
    "experiments list a backbone that does not exist",
    expect="error: <tmp>/config.yaml: experiments.main.backbones: unknown backbone 'resnet99' (did you mean 'resnet50'?); choose one of: densenet121, efficientnet_b7, resnet18, resnet50, smallcnn, swin_t",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["experiments"]["main"]["backbones"] = ["resnet99"]

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "unknown-config-key",
    "misspelt key train.epoch",
    expect="error: <tmp>/config.yaml: train: unknown key ('epoch' was unexpected) (remove it or check its spelling against workflow/schemas/config.schema.yaml)",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["train"]["epoch"] = 3

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "unknown-method-setting",
    "methods.cyborg.gamma (cyborg has no such setting)",
    expect="error: <tmp>/config.yaml: methods.cyborg.gamma: unknown setting; cyborg accepts: alpha, beta, cam_class",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["methods"] = {"cyborg": {"gamma": 0.5}}

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "wrong-type-method-setting",
    "methods.cyborg.beta: high (a string, not a number)",
    expect="error: <tmp>/config.yaml: methods.cyborg.beta: must be a number >= 0, got 'high'",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["methods"] = {"cyborg": {"beta": "high"}}

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "wrong-type-string",
    "train.lr: fast (a string)",
    expect="error: <tmp>/config.yaml: train.lr: 'fast' is not of type 'number'",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["train"]["lr"] = "fast"

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "wrong-type-float",
    "train.epochs: 2.5 (not an integer)",
    expect="error: <tmp>/config.yaml: train.epochs: 2.5 is not of type 'integer'",
    absent=["results"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["train"]["epochs"] = 2.5

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "invalid-yaml",
    "config file that is not YAML (tab indentation)",
    expect="error: <tmp>/config.yaml: not valid YAML at line 2, column 1 (found character '\\t' that cannot start any token)",
    absent=["results"],
)
def _(ws, tmp):
    return train_argv(write_cfg(ws, tmp, text="train:\n\tepochs: 2\n"))


@case(
    "run-id-not-in-config",
    "run id of a dataset the config does not define",
    expect="error: dataset 'other' is not defined in the config",
    absent=["results"],
)
def _(ws, tmp):
    return train_argv(write_cfg(ws, tmp), "other/all/smallcnn/xent/base/seed0")


@case(
    "prepared-missing",
    "train before `prepare` (no prepared data folder)",
    expect="error: prepared data folder <tmp>/nodata/prepared/tiny does not exist; run `python -m salience prepare ...` (--config CFG --dataset NAME, or --manifest CSV --out <tmp>/nodata/prepared/tiny --image-size N)",
    absent=RUN_OUTPUTS,
)
def _(ws, tmp):
    def edit(cfg):
        cfg["data_dir"] = str(tmp / "nodata")

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "nan-learning-rate",
    "train.lr: 1e12 (the loss becomes NaN)",
    expect="error: tiny/all/smallcnn/cyborg/base/seed0 (train): loss became nan at epoch 1, batch 3; lower train.lr (now 1000000000000.0) or check the data",
    absent=RUN_OUTPUTS + [f"results/runs/{RUN_ID}/checkpoint.pt"],
)
def _(ws, tmp):
    def edit(cfg):
        cfg["train"]["lr"] = 1.0e12
        cfg["experiments"]["main"]["methods"] = ["cyborg"]

    return train_argv(write_cfg(ws, tmp, edit), RUN_ID.replace("xent", "cyborg"))


@case(
    "truncated-prepared-array",
    "prepared images.npy cut in half (disk full, bad copy)",
    expect="error: prepared data folder <tmp>/data/prepared/tiny is damaged: images.npy has 159808 bytes, meta.json records 319616 (cut copy or full disk?); run `python -m salience prepare ...` again",
    absent=RUN_OUTPUTS,
)
def _(ws, tmp):
    shutil.copytree(ws.prepared, tmp / "data" / "prepared" / "tiny")
    truncated_copy(ws.prepared / "images.npy", tmp / "data" / "prepared" / "tiny" / "images.npy")

    def edit(cfg):
        cfg["data_dir"] = str(tmp / "data")

    return train_argv(write_cfg(ws, tmp, edit))


# --- checkpoints and weight files (`evaluate`, resume, model.weights) ---
@case(
    "malicious-weights-file",
    "model.weights: a .pth whose pickle runs code on load",
    expect="error: <tmp>/weights.pth: refused: the file contains Python objects that could run code on load; only weights-only checkpoints written by salience are accepted",
    absent=RUN_OUTPUTS + [MARKER],
)
def _(ws, tmp):
    good = torch.load(ws.model, weights_only=True)["state_dict"]
    backbone = {k[len("backbone.") :]: v for k, v in good.items() if k.startswith("backbone.")}
    torch.save({**backbone, "extra": Evil(tmp / MARKER)}, tmp / "weights.pth")

    def edit(cfg):
        cfg["model"]["weights"] = str(tmp / "weights.pth")

    return train_argv(write_cfg(ws, tmp, edit))


@case(
    "truncated-checkpoint",
    "model.pt cut in half, given to evaluate --checkpoint",
    expect="error: <tmp>/model.pt: unreadable or truncated checkpoint (PytorchStreamReader failed reading zip archive: failed finding central directory); delete it and retrain",
    absent=["eval"],
)
def _(ws, tmp):
    return evaluate_argv(ws, tmp, truncated_copy(ws.model, tmp / "model.pt"))


@case(
    "malicious-checkpoint",
    "model.pt whose pickle runs code on load, given to evaluate --checkpoint",
    expect="error: <tmp>/model.pt: refused: the file contains Python objects that could run code on load; only weights-only checkpoints written by salience are accepted",
    absent=["eval", MARKER],
)
def _(ws, tmp):
    return evaluate_argv(ws, tmp, evil_checkpoint(tmp / "model.pt", tmp / MARKER, ws))


@case(
    "not-a-checkpoint",
    "a .pt file holding a bare tensor",
    expect="error: <tmp>/model.pt: not a salience checkpoint (no 'state_dict'); use a model.pt written by `salience train`",
    absent=["eval"],
)
def _(ws, tmp):
    torch.save(torch.zeros(3), tmp / "model.pt")
    return evaluate_argv(ws, tmp, tmp / "model.pt")


@case(
    "weights-from-other-backbone",
    "resnet18 weights in a model.pt whose metadata says smallcnn",
    expect="error: <tmp>/model.pt: weights do not fit this model (24 missing, 120 unexpected, 1 wrong-shape tensors, e.g. 'backbone.stages.0.0.0.weight'); is it from another backbone/method?",
    absent=["eval"],
)
def _(ws, tmp):
    from salience.methods.base import build_method
    from salience.models.base import build_backbone

    good = torch.load(ws.model, weights_only=True)
    other = build_method("xent").build_model(build_backbone("resnet18", weights="none"))
    torch.save({"state_dict": other.state_dict(), "meta": good["meta"]}, tmp / "model.pt")
    return evaluate_argv(ws, tmp, tmp / "model.pt")


@case(
    "checkpoint-of-other-backbone",
    "a resnet18 run's model.pt in the smallcnn run folder (evaluate --run-id)",
    expect="error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/model.pt: holds the model of run tiny/all/resnet18/xent/base/seed0 (backbone resnet18, method xent), not of tiny/all/smallcnn/xent/base/seed0; delete it and retrain this run",
    absent=[f"results/runs/{RUN_ID}/{f}" for f in ("scores.csv", "metrics.json")],
)
def _(ws, tmp):
    from salience.methods.base import build_method
    from salience.models.base import build_backbone

    good = torch.load(ws.model, weights_only=True)
    other = build_method("xent").build_model(build_backbone("resnet18", weights="none"))
    rdir = run_dir(tmp)
    rdir.mkdir(parents=True)
    meta = {
        **good["meta"],
        "backbone": "resnet18",
        "run_id": RUN_ID.replace("smallcnn", "resnet18"),
    }
    torch.save({"state_dict": other.state_dict(), "meta": meta}, rdir / "model.pt")
    return ["evaluate", "--config", str(write_cfg(ws, tmp)), "--run-id", RUN_ID, "--no-mlflow"]


@case(
    "evaluate-untrained-run",
    "evaluate a run that was never trained",
    expect="error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/model.pt: checkpoint not found; train the run first (python -m salience train ...)",
    absent=[f"results/runs/{RUN_ID}/{f}" for f in ("scores.csv", "metrics.json")],
)
def _(ws, tmp):
    return ["evaluate", "--config", str(write_cfg(ws, tmp)), "--run-id", RUN_ID, "--no-mlflow"]


@case(
    "truncated-resume-checkpoint",
    "checkpoint.pt cut in half (resume)",
    expect="error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/checkpoint.pt: unreadable or truncated checkpoint (PytorchStreamReader failed reading zip archive: failed finding central directory); delete it to restart the run",
    absent=RUN_OUTPUTS,
)
def _(ws, tmp):
    truncated_copy(ws.model.parent / "checkpoint.pt", run_dir(tmp) / "checkpoint.pt")
    return train_argv(write_cfg(ws, tmp))


@case(
    "malicious-resume-checkpoint",
    "checkpoint.pt whose pickle runs code on load (resume)",
    expect="error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/checkpoint.pt: refused: the file contains Python objects that could run code on load; only weights-only checkpoints written by salience are accepted",
    absent=RUN_OUTPUTS + [MARKER],
)
def _(ws, tmp):
    good = torch.load(ws.model.parent / "checkpoint.pt", weights_only=True)
    path = run_dir(tmp) / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    torch.save({**good, "extra": Evil(tmp / MARKER)}, path)
    return train_argv(write_cfg(ws, tmp))


@case(
    "resume-other-config",
    "checkpoint.pt of the same run id trained with another config",
    expect="error: <tmp>/results/runs/tiny/all/smallcnn/xent/base/seed0/checkpoint.pt: checkpoint belongs to a different configuration of this run; delete it to restart the run",
    absent=RUN_OUTPUTS,
)
def _(ws, tmp):
    path = run_dir(tmp) / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    shutil.copy(ws.model.parent / "checkpoint.pt", path)

    def edit(cfg):
        cfg["train"]["lr"] = 0.02

    return train_argv(write_cfg(ws, tmp, edit))


# ----------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    argv: list[str]
    proc: subprocess.CompletedProcess
    tmp: Path
    before: set[str]  # files under tmp before the command ran (the bad input)
    after: set[str]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def run_case(c: Case, ws: Workspace, tmp: Path) -> Outcome:
    tmp.mkdir(parents=True)
    argv = c.build(ws, tmp)
    before = files_under(tmp)
    proc = subprocess.run(
        salience_argv(*argv),
        capture_output=True,
        text=True,
        env=workflow_env(OMP_NUM_THREADS="1"),
        cwd=tmp,
        timeout=300,
    )
    return Outcome(argv, proc, tmp, before, files_under(tmp))


@pytest.fixture(scope="module")
def outcomes(request, ws, tmp_path_factory) -> dict[str, Outcome]:
    """Run the CLI of every selected case, two at a time."""
    wanted = {
        item.callspec.params["c"].id
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and "c" in item.callspec.params
    }
    base = tmp_path_factory.mktemp("cases")
    todo = [c for c in CASES if c.id in wanted]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.id: pool.submit(run_case, c, ws, base / c.id) for c in todo}
        return {k: f.result() for k, f in futures.items()}


def normalise(line: str, tmp: Path) -> str:
    line = line.replace(str(tmp.resolve()), "<tmp>").replace(str(tmp), "<tmp>")
    return re.sub(r"0x[0-9a-f]+", "0x…", line)


@pytest.mark.integration  # ~37 CLI subprocesses: about a minute on 2 cores
@pytest.mark.parametrize(
    "c",
    [pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail)) if c.xfail else c for c in CASES],
    ids=[c.id for c in CASES],
)
def test_bad_input_fails_cleanly(c: Case, outcomes):
    out = outcomes[c.id]
    stderr = out.proc.stderr
    lines = stderr.strip().splitlines()
    assert out.proc.returncode == 2, f"{c.id}: exit {out.proc.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert lines[-1].startswith("error: ") and sum(ln.startswith("error: ") for ln in lines) == 1
    assert normalise(lines[-1], out.tmp) == c.expect
    for rel in c.absent:
        assert not (out.tmp / rel).exists(), f"{c.id}: {rel} was left behind"
    # nothing half-written: the command added no file at all (no output, no .tmp-* leftover)
    assert out.after - out.before == set(), (
        f"{c.id}: files left behind: {sorted(out.after - out.before)}"
    )


def test_every_case_is_documented():
    """docs/robustness.md holds every case's message verbatim (`|` escaped inside the table)."""
    doc = DOC.read_text().replace("\\|", "|")
    missing = [c.id for c in CASES if not c.xfail and c.expect not in doc]
    assert not missing, missing
    assert len(CASES) >= 15


# ----------------------------------------------------------------------------------- the workflow
@pytest.mark.integration
def test_workflow_bad_config_stops_before_any_job(ws, tmp_path):
    """The same package check runs when Snakemake parses the config: one line naming the key."""

    def edit(cfg):
        cfg["experiments"]["main"]["methods"] = ["xnet"]

    cfg = write_cfg(ws, tmp_path, edit)
    res = subprocess.run(
        snakemake_argv(tmp_path, cfg, "-n"),
        capture_output=True,
        text=True,
        env=workflow_env(),
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert (
        "config.yaml: experiments.main.methods: unknown method 'xnet' (did you mean 'xent'?); choose one of: "
        + ALL_METHOD_NAMES
    ) in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.integration
def test_workflow_bad_manifest_fails_the_prepare_job_cleanly(ws, tmp_path):
    """A manifest dataset with a label outside the classes: the prepare job fails, its log ends
    with the one-line error (Snakemake prints it), and no prepared folder exists."""
    ds = copy_raw(ws, tmp_path)
    rows = rows_of(ds)
    rows[2][1] = "7"
    write_rows(ds, rows)

    def edit(cfg):
        cfg["data_dir"] = str(tmp_path / "data")
        cfg["datasets"] = {
            "mine": {
                "task": "chest",
                "source": "manifest",
                "manifest": str(ds / "manifest.csv"),
                "image_size": 32,
                "cam_grids": [4],
            }
        }
        cfg["experiments"]["main"]["datasets"] = ["mine"]

    cfg = write_cfg(ws, tmp_path, edit)
    target = str(tmp_path / "data" / "prepared" / "mine")
    res = subprocess.run(
        snakemake_argv(tmp_path, cfg, target),
        capture_output=True,
        text=True,
        env=workflow_env(),
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    message = (
        f"error: {ds}/manifest.csv line 3: images/train/train_00001.png: label '7' is outside the two classes 0 and 1 "
        f"(1 = attack/synthetic/abnormal); fix the row, or convert class names with "
        f"`python -m salience import ... --label-map NAME=0|1`, or, for a dataset with more "
        f"than two classes, declare them (`datasets.<name>.classes` in the config, "
        f"`prepare --classes a,b,c`)"
    )
    log = (tmp_path / "logs" / "prepare" / "mine.log").read_text().strip().splitlines()
    assert log[-1] == message and "Traceback" not in "\n".join(log)
    assert message in out  # show-failed-logs (profiles/default)
    assert not (tmp_path / "data" / "prepared" / "mine").exists()
    if (tmp_path / "data").exists():
        assert not list((tmp_path / "data").rglob(".tmp-*"))
