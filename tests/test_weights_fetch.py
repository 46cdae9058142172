"""Pretrained weights that cannot silently go missing (issue 13 §1).

- `model.weights: imagenet` requires the pinned torchvision file: a missing one stops the job with
  one line naming the file, the folder and the fetch command; smallcnn + imagenet is a config error.
- `python -m salience weights fetch|list` against a real HTTP server on 127.0.0.1 (and a file://
  folder): a good file, a corrupt file (hash mismatch), an interrupted download, idempotence.

The real pinned names fix the sha256 of the real 45–255 MB files, which a test cannot produce, so
the good and the rerun-after-interruption cases use a test pin table whose file names carry their
content's hash (`fetch(..., pins=...)`, docs/decisions.md); the failure cases run the CLI on the
real pinned names.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import salience  # noqa: F401  - installs the torchvision shim before torchvision is imported

# isort: split
import pandas as pd
import pytest
import torch
import torchvision.models as tvm
from _support import ROOT, empty_hub, run_cli, tiny_config, tiny_config_on, write_config

from salience import cli
from salience.doctor import report
from salience.errors import ConfigError, SalienceError
from salience.models.base import build_backbone
from salience.models.catalogue import IMAGENET_URLS, imagenet_file
from salience.models.fetch import fetch, hash_prefix
from salience.reporting.aggregate import collect_runs, find_run_dirs
from salience.study import load_config, validate

BASE = "https://download.pytorch.org/models/"
DOC = (ROOT / "docs" / "robustness.md").read_text()


# ------------------------------------------------------------------------------------- mirror
class Mirror:
    """A real HTTP server on 127.0.0.1 serving `folder`; names in `cut` are sent with their full
    Content-Length but the connection is closed after half the body (a dropped download), once."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.cut, self.requests = folder, set(), []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                path = mirror.folder / name
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in mirror.cut:
                    mirror.cut.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    m = Mirror(folder)
    yield m
    m.server.shutdown()
    m.server.server_close()


def tiny_pin(folder: Path, size: int = 300_000, seed: int = 0) -> tuple[dict, bytes]:
    """A weight file in `folder` named after its own sha256 prefix (torch.hub convention)."""
    data = torch.Generator().manual_seed(seed)
    body = torch.randint(0, 256, (size,), dtype=torch.uint8, generator=data).numpy().tobytes()
    name = f"tiny-{hashlib.sha256(body).hexdigest()[:10]}.pth"
    (folder / name).write_bytes(body)
    return {"tiny": BASE + name}, body


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache under a temporary TORCH_HOME (for this process and subprocesses)."""
    return empty_hub(tmp_path, monkeypatch)


# --------------------------------------------------------------------------------- the pin table
def test_pins_are_torchvisions_imagenet1k_v1_files():
    enums = {
        "resnet18": tvm.ResNet18_Weights,
        "resnet50": tvm.ResNet50_Weights,
        "densenet121": tvm.DenseNet121_Weights,
        "efficientnet_b7": tvm.EfficientNet_B7_Weights,
        "swin_t": tvm.Swin_T_Weights,
    }
    assert {n: e.IMAGENET1K_V1.url for n, e in enums.items()} == IMAGENET_URLS
    # the trap of the old docs: weights='DEFAULT' stores ResNet-50's V2 file, another name
    assert tvm.ResNet50_Weights.DEFAULT.url != IMAGENET_URLS["resnet50"]
    assert all(len(hash_prefix(u)) >= 8 for u in IMAGENET_URLS.values())
    assert imagenet_file("smallcnn") is None


# ------------------------------------------------------------------------------- fetch and list
def test_good_file_from_http_mirror_is_verified_and_fetch_is_idempotent(mirror, tmp_path):
    pins, body = tiny_pin(mirror.folder)
    dest = tmp_path / "weights"
    [(wf, status)] = fetch(["tiny"], dest, mirror.url, progress=False, pins=pins)
    assert status == "downloaded" and wf.path.read_bytes() == body
    assert sorted(os.listdir(dest)) == [wf.path.name]  # no temporary file left
    assert len(mirror.requests) == 1
    [(_, again)] = fetch(["tiny"], dest, mirror.url, progress=False, pins=pins)
    assert again == "present" and len(mirror.requests) == 1  # no second download
    # a file damaged after the download is reported, and left alone (not ours to delete)
    wf.path.write_bytes(body[:-1] + b"x")
    with pytest.raises(SalienceError, match="present but its sha256 starts with"):
        fetch(["tiny"], dest, mirror.url, progress=False, pins=pins)
    assert wf.path.exists()


def test_good_file_from_a_file_url_mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    pins, body = tiny_pin(folder, size=5000, seed=1)
    [(wf, status)] = fetch(None, tmp_path / "w", folder.as_uri(), progress=False, pins=pins)
    assert status == "downloaded" and wf.path.read_bytes() == body


def test_corrupt_file_is_refused_in_one_line_and_nothing_is_kept(mirror, tmp_path):
    name = imagenet_file("resnet18")
    (mirror.folder / name).write_bytes(b"not the resnet18 weights" * 1000)
    dest = tmp_path / "weights"
    args = ["weights", "fetch", "--backbones", "resnet18", "--dir", str(dest), "--mirror"]
    proc = run_cli([*args, mirror.url], check=False)
    assert proc.returncode == 2, proc.stderr
    [line] = error_lines(proc.stderr)
    assert line == (
        f"error: {mirror.url}{name}: sha256 starts with "
        f"{hashlib.sha256(b'not the resnet18 weights' * 1000).hexdigest()[:8]}, not f37072fd as "
        f"the file name says (corrupt or another file); nothing saved under {dest / name}"
    )
    assert "Traceback" not in proc.stderr
    assert "100%" in proc.stderr and name in proc.stderr  # the tqdm progress bar
    assert os.listdir(dest) == []  # no final file, no partial file
    # --quiet: the error is the whole of stderr
    quiet = run_cli([*args, mirror.url, "--quiet"], check=False)
    assert quiet.returncode == 2 and quiet.stderr.strip().splitlines() == [line]


def test_interrupted_download_leaves_nothing_and_a_rerun_succeeds(mirror, tmp_path):
    name = imagenet_file("resnet50")
    (mirror.folder / name).write_bytes(bytes(100_000))
    mirror.cut.add(name)
    dest = tmp_path / "weights"
    proc = run_cli(
        ["weights", "fetch", "--backbones", "resnet50", "--dir", str(dest), "--mirror", mirror.url],
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        f"error: {mirror.url}{name}: connection closed after 50000 of 100000 bytes; "
        f"nothing saved, rerun the command to retry"
    ]
    assert os.listdir(dest) == []
    # the rerun (test pins: a file named after its own hash) after a dropped connection
    pins, body = tiny_pin(mirror.folder)
    mirror.cut.add(Path(pins["tiny"]).name)
    with pytest.raises(SalienceError, match="connection closed after 150000 of 300000 bytes"):
        fetch(["tiny"], dest, mirror.url, progress=False, pins=pins)
    assert os.listdir(dest) == []
    [(wf, status)] = fetch(["tiny"], dest, mirror.url, progress=False, pins=pins)
    assert status == "downloaded" and wf.path.read_bytes() == body


def test_unreachable_mirror_and_unknown_backbone_are_one_line(tmp_path):
    dest = tmp_path / "weights"
    down = run_cli(
        ["weights", "fetch", "--backbones", "swin_t", "--dir", str(dest), "--mirror"]
        + ["http://127.0.0.1:9/"],
        check=False,
    )
    assert down.returncode == 2
    [line] = error_lines(down.stderr)
    assert line.startswith("error: http://127.0.0.1:9/swin_t-704ceda3.pth: download failed (")
    assert not dest.exists() or os.listdir(dest) == []
    small = run_cli(
        ["weights", "fetch", "--backbones", "smallcnn", "--dir", str(dest)], check=False
    )
    assert small.returncode == 2 and small.stderr.strip().splitlines() == [
        "error: weights: no pinned ImageNet file for smallcnn; choose from resnet18, resnet50, "
        "densenet121, efficientnet_b7, swin_t"
    ]
    assert small.stderr.strip() in DOC  # docs/robustness.md quotes it


def test_weights_list_shows_each_pinned_file_and_whether_it_is_present(hub):
    (hub / imagenet_file("resnet50")).write_bytes(b"x")
    (hub / "densenet121-00000000.pth").write_bytes(b"x")  # another file of that backbone
    proc = run_cli(["weights", "list"], env={"TORCH_HOME": str(hub.parent.parent)})
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == f"folder: {hub}"
    state = {ln.split()[0]: (ln.split()[1], ln.split()[2]) for ln in lines[1:]}
    assert state == {
        b: (imagenet_file(b), "present" if b == "resnet50" else "missing") for b in IMAGENET_URLS
    }


# -------------------------------------------------------------------------- model.weights: imagenet
def test_imagenet_loads_the_pinned_file_and_records_its_origin(hub, tmp_path):
    torch.manual_seed(3)
    state = tvm.resnet18(weights=None).state_dict()
    torch.save(state, hub / imagenet_file("resnet18"))
    bb = build_backbone("resnet18", weights="imagenet")
    assert bb.weights_origin == "imagenet:resnet18-f37072fd.pth"
    assert torch.equal(bb.state_dict()["conv1.weight"], state["conv1.weight"])
    # the same tensors under another name are a user file, not "ImageNet" in the captions
    torch.save(state, tmp_path / "mine.pth")
    assert build_backbone("resnet18", weights=str(tmp_path / "mine.pth")).weights_origin == (
        "file:mine.pth"
    )


def test_imagenet_with_a_missing_file_stops_the_job_in_one_line(hub, tmp_path, tiny_data_dir):
    cfg = tiny_config_on(tmp_path, tiny_data_dir)  # read only: the job stops before writing
    cfg["experiments"]["main"]["backbones"] = ["resnet50"]
    cfg["model"]["weights"] = "imagenet"
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"x")  # what weights='DEFAULT' stored (V2)
    path = write_config(cfg)
    run = "tiny/all/resnet50/xent/base/seed0"
    proc = run_cli(
        ["train", "--config", str(path), "--run-id", run, "--no-mlflow"],
        check=False,
        env={"TORCH_HOME": str(hub.parent.parent)},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: model.weights: imagenet: resnet50-0676ba61.pth for resnet50 is not in {hub} "
        "(it holds resnet50-11ad3fa6.pth: not the pinned file); fetch it with "
        "`python -m salience weights fetch --backbones resnet50` (or set TORCH_HOME to where it is)"
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results" / "runs" / run / "model.pt").exists()


def test_gazegnn_imagenet_file_missing_says_where_to_get_it(hub):
    """Gaze-GNN's Pyramid ViG-Ti file has no sha256 in its published name, so `weights fetch`
    does not know it: the one line must not send the user to a command that cannot fetch it."""
    from salience.methods.base import build_method

    with pytest.raises(ConfigError) as err:
        build_method("gazegnn", {}).build_own_model("imagenet")
    assert str(err.value) == (
        f"model.weights: imagenet: pvig_ti_78.5.pth.tar for pvig_ti is not in {hub}; download it "
        "from the Vision GNN release (docs/cluster.md §1, not in `python -m salience weights "
        "fetch`) into that folder (or set TORCH_HOME to where it is)"
    )
    assert "pvig_ti_78.5.pth.tar" in (ROOT / "docs" / "cluster.md").read_text()


def test_imagenet_for_smallcnn_is_a_one_line_config_error(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["model"]["weights"] = "imagenet"
    with pytest.raises(ConfigError) as err:
        validate(cfg, "cfg.yaml")
    assert str(err.value) == (
        "cfg.yaml: experiments.main.backbones: model.weights: imagenet: backbone smallcnn has no "
        "pretrained ImageNet file (files exist for resnet18, resnet50, densenet121, "
        "efficientnet_b7, swin_t); use weights: none for it"
    )
    assert str(err.value).split(": ", 1)[1] in DOC
    with pytest.raises(ConfigError, match="has no pretrained ImageNet file"):
        build_backbone("smallcnn", weights="imagenet")


def test_doctor_says_which_pinned_files_a_config_needs(hub):
    cfg = load_config(ROOT / "config/paper-dd.yaml")
    [line] = [ln for ln in report(cfg) if ln.startswith("weights ")]
    assert line == (
        f"weights       model.weights imagenet; 0 of 1 pinned ImageNet files in {hub} "
        "(missing densenet121-a639ec97.pth: `python -m salience weights fetch`)"
    )
    (hub / "densenet121-a639ec97.pth").write_bytes(b"x")
    assert f"weights       model.weights imagenet; 1 of 1 pinned ImageNet files in {hub}" in report(
        cfg
    )


def test_paper_configs_require_imagenet_and_the_demo_does_not():
    for rel in ("config/paper.yaml", "config/paper-dd.yaml"):
        assert load_config(ROOT / rel)["model"]["weights"] == "imagenet", rel
    assert load_config(ROOT / "config/config.yaml")["model"]["weights"] == "auto"


# ------------------------------------------------------------------------------ table captions
def _run(root: Path, backbone: str, method: str, seed: int, origin: str) -> None:
    run_id = f"chest/all/{backbone}/{method}/base/seed{seed}"
    d = root / run_id
    d.mkdir(parents=True)
    meta = {"run_id": run_id, "dataset": "chest", "task": "chest", "fold": "all"}
    meta |= {"backbone": backbone, "method": method, "variant": "base", "seed": seed}
    (d / "run.json").write_text(json.dumps(meta | {"weights_origin": origin}))
    au = 0.7 + 0.01 * seed + 0.02 * (method == "sage")
    metrics = {
        "auroc": {"all": au},
        "auroc_sigmoid": {"all": au},
        "n": {"all": {"pos": 8, "neg": 8}},
    }
    (d / "metrics.json").write_text(json.dumps(metrics | {"best_epoch": 1, "epochs": 2}))


def _tables(tmp_path: Path, origin_of, *extra: str) -> tuple[int, Path]:
    """Run dirs → runs.csv → `tables` (the CLI, in process); origin_of(backbone, seed)."""
    root, out = tmp_path / "runs", tmp_path / "out"
    for bb in ("resnet50", "efficientnet_b7"):
        for m in ("xent", "sage"):
            for s in range(3):
                _run(root, bb, m, s, origin_of(bb, s))
    out.mkdir(parents=True)
    collect_runs(find_run_dirs(root)).to_csv(out / "runs.csv", index=False)  # as `aggregate`
    rc = cli.main(["tables", "--runs", str(out / "runs.csv"), "--out-dir", str(out / "t"), *extra])
    return rc, out / "t"


def test_every_caption_states_the_weights_origin(tmp_path):
    rc, out = _tables(tmp_path, lambda bb, s: f"imagenet:{imagenet_file(bb)}")
    assert rc == 0
    t2 = (out / "sage_t2.tex").read_text()
    assert (
        r"Backbones initialised from ImageNet (torchvision IMAGENET1K\_V1 files "
        r"efficientnet\_b7\_lukemelas-c5b4e57e.pth, resnet50-0676ba61.pth)." in t2
    )
    assert "resnet50-0676ba61.pth)." in (out / "sage_t1.tex").read_text()
    data = pd.read_csv(out / "sage_t2.csv")
    assert set(data.loc[data["kind"] == "run", "weights_origin"].str.split(":").str[0]) == {
        "imagenet"
    }
    # aggregate rows carry their cell's initialisation too (filtering to cells keeps it)
    aggs = data[data["kind"] == "aggregate"]
    assert len(aggs) and aggs["weights_origin"].str.startswith("imagenet:").all()
    rc, out = _tables(tmp_path / "r", lambda bb, s: "random")
    assert rc == 0
    for tid in ("sage_t1", "sage_t2"):
        tex = (out / f"{tid}.tex").read_text()
        assert "Backbones randomly initialised (no pretrained weights)." in tex
    # these runs have no test maps: the agreement table says so instead of a caption of cells
    assert "No test maps" in (out / "agreement.tex").read_text()


def test_a_table_mixing_random_and_pretrained_runs_is_refused_unless_allowed(tmp_path, capsys):
    def origin(bb: str, seed: int) -> str:  # one ResNet-50 seed lost its weights file
        return "random" if (bb, seed) == ("resnet50", 1) else f"imagenet:{imagenet_file(bb)}"

    rc, out = _tables(tmp_path, origin)
    assert rc == 2 and not out.exists()  # no table written
    [line] = capsys.readouterr().err.strip().splitlines()
    # the overview of every run is checked first: it holds all 12 runs
    assert line == (
        "error: table overview: its runs mix backbone initialisations (ImageNet: 10 runs (e.g. "
        "chest/all/efficientnet_b7/sage/base/seed0); random init: 2 runs (e.g. "
        "chest/all/resnet50/sage/base/seed1)); rerun them with one model.weights (`python -m "
        "salience weights fetch` for the ImageNet files), or allow it with `tables "
        "--allow-mixed-weights` (report.allow_mixed_weights: true)"
    )
    rc, out = _tables(tmp_path / "allowed", origin, "--allow-mixed-weights")
    assert rc == 0
    assert "Mixed backbone initialisation: ImageNet (4 runs), random init (2 runs)." in (
        (out / "sage_t1.tex").read_text()
    )
