"""Difference Salience figures for K > 2 classes (issue 12 §6): the true class against its strongest
competitor, and one panel per class pair on request (`visualize --pairs`).

Real components: a prepared folder written as `prepare` lays it out (images.npy, maps.npy,
index.csv, meta.json with `classes`), a real model.pt (safe-loaded), real PNGs read back with PIL.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml
from _support import ROOT, run, run_cli, snakemake_argv, tool_bin, workflow_env
from PIL import Image

from salience import checkpoint as ckpt
from salience.cam import minmax
from salience.data.loader import to_tensor_images
from salience.data.prepared import PreparedDataset
from salience.methods.base import build_method
from salience.models.base import Classifier, build_backbone
from salience.visualize import (
    competitor_panels,
    draw,
    panels,
    pick_samples,
    visualize_checkpoint,
)

CLASSES = ["normal", "chf", "pneumonia"]
SIZE = 32


def _prepared(root, k: int, per_class: int = 2, names: list[str] | None = None):
    """A prepared test split of `per_class` rows per class: noise plus a bright square at a
    class-specific place, the human map on that square (the last row has no map)."""
    rng = np.random.default_rng(0)
    n = k * per_class
    labels = np.repeat(np.arange(k), per_class)
    images = rng.integers(0, 90, (n, SIZE, SIZE, 3), dtype=np.uint8)
    maps = np.zeros((n, SIZE, SIZE), np.uint8)
    for r, y in enumerate(labels):
        o = 4 + 8 * int(y)
        images[r, o : o + 8, o : o + 8] = 230
        maps[r, o : o + 8, o : o + 8] = 255
    maps[-1] = 0
    root.mkdir(parents=True)
    np.save(root / "images.npy", images)
    np.save(root / "maps.npy", maps)
    lines = ["split,label,subset,image,has_map"]
    lines += [f"test,{y},,img{r}.png,{r != n - 1}" for r, y in enumerate(labels)]
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    meta = {"name": root.name, "image_size": SIZE, "cam_grids": []}
    if names:
        meta["classes"] = names
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def _model_pt(path, k: int, bias: list[float] | None = None):
    """A K-way smallcnn fooling model.pt (untrained; with `bias` on the head)."""
    torch.manual_seed(0)
    model = Classifier(build_backbone("smallcnn", weights="none"), num_classes=k)
    if bias is not None:
        with torch.no_grad():
            model.fc.bias.copy_(torch.tensor(bias))
    meta = {"backbone": "smallcnn", "method": "fooling", "run_id": f"k{k}", "cam_layer": "pooled"}
    if k != 2:
        meta["num_classes"] = k
    ckpt.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return model


def test_three_classes_show_the_strongest_competitor(tmp_path):
    prepared = _prepared(tmp_path / "gaze", 3, names=CLASSES)
    # the head's bias ranks the classes pneumonia > chf > normal whatever the image (CAMs carry
    # no bias), so the strongest wrong class is pneumonia for normal and chf, chf for pneumonia
    model = _model_pt(tmp_path / "model.pt", 3, bias=[0.0, 20.0, 40.0])
    res = visualize_checkpoint(tmp_path / "model.pt", prepared, tmp_path / "fig.png", samples=2)
    assert res.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert res.competitor.tolist() == [2, 2, 2, 2, 1, 1]
    assert res.names == CLASSES and res.pairs == []
    with Image.open(res.path) as im:
        assert im.format == "PNG" and im.size[0] > 1000  # five columns

    # the drawn Difference Salience is norm(cam_y − cam_s), computed here from the model's CAMs
    ds = PreparedDataset(prepared)
    images = np.asarray(ds.images[res.rows])
    p = competitor_panels(model, build_method("fooling"), images, ds.maps[res.rows], res.labels)
    with torch.no_grad():
        cams = model.cams(model.eval().forward_all(to_tensor_images(images)))
    y, s = torch.as_tensor(res.labels), torch.as_tensor(res.competitor)
    d = minmax(cams[torch.arange(6), y] - cams[torch.arange(6), s])
    up = torch.nn.functional.interpolate(d[:, None], size=(SIZE, SIZE), mode="bilinear")[:, 0]
    np.testing.assert_allclose(p["difference"], up.numpy(), atol=1e-6)
    np.testing.assert_allclose(p["probs"].sum(1), 1.0, atol=1e-6)


def test_competitor_is_the_argmax_of_the_wrong_classes(tmp_path):
    """No bias: the competitor follows each image's own logits (K = 4)."""
    prepared = _prepared(tmp_path / "four", 4, names=["a", "b", "c", "d"])
    model = _model_pt(tmp_path / "model.pt", 4)
    res = visualize_checkpoint(tmp_path / "model.pt", prepared, tmp_path / "fig.png", samples=1)
    ds = PreparedDataset(prepared)
    with torch.no_grad():
        logits = model.eval()(to_tensor_images(np.asarray(ds.images[res.rows]))).numpy()
    logits[np.arange(4), res.labels] = -np.inf
    assert res.competitor.tolist() == logits.argmax(1).tolist()
    assert res.names == ["a", "b", "c", "d"]


def test_pairs_draw_one_panel_per_ordered_class_pair(tmp_path):
    prepared = _prepared(tmp_path / "gaze", 3, names=CLASSES)
    _model_pt(tmp_path / "model.pt", 3)
    out = tmp_path / "pairs.png"
    proc = run_cli(
        ["visualize", "--checkpoint", str(tmp_path / "model.pt"), "--prepared", str(prepared)]
        + ["--out", str(out), "--samples", "2", "--pairs"]
    )
    assert f"wrote {out}" in proc.stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > im.size[0]  # six rows of two samples
    res = visualize_checkpoint(
        tmp_path / "model.pt", prepared, tmp_path / "p.png", samples=2, pairs=True
    )
    assert res.pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]  # K·(K−1) panels
    assert res.competitor is None
    assert (tmp_path / "p.png").read_bytes() == out.read_bytes()


def _text_bands_above_panels(png) -> int:
    """Separate bands of ink (rows with a dark pixel, white rows between) above the first row of
    panels (the first pixel row that is mostly not white) of a PNG read back with PIL."""
    with Image.open(png) as im:
        g = np.asarray(im.convert("L"))
    top = int(np.argmax((g < 250).mean(1) > 0.5))
    ink = (g[:top] < 160).any(1)
    return int(np.sum(ink[1:] & ~ink[:-1]) + ink[0])


def test_figure_title_clears_the_panel_titles(tmp_path):
    """K = 3 with the default 4 samples per class (12 rows): the figure title and the first row's
    panel titles are two bands of text with white between (they overlapped before), also with
    --pairs."""
    prepared = _prepared(tmp_path / "gaze", 3, per_class=4, names=CLASSES)
    _model_pt(tmp_path / "model.pt", 3)
    res = visualize_checkpoint(tmp_path / "model.pt", prepared, tmp_path / "fig.png")
    assert len(res.rows) == 12 and _text_bands_above_panels(res.path) == 2
    visualize_checkpoint(tmp_path / "model.pt", prepared, tmp_path / "p.png", pairs=True)
    assert _text_bands_above_panels(tmp_path / "p.png") == 2


def test_binary_figure_is_the_four_column_fig1(tmp_path):
    """K = 2 keeps DD Fig. 1 as drawn before issue 12: the bytes of `draw(panels(...))`."""
    prepared = _prepared(tmp_path / "bin", 2)
    model = _model_pt(tmp_path / "model.pt", 2)
    res = visualize_checkpoint(tmp_path / "model.pt", prepared, tmp_path / "fig.png", samples=2)
    assert res.competitor is None and res.names == ["0", "1"]
    ds = PreparedDataset(prepared)
    rows = pick_samples(ds, "test", 2)
    labels = ds.index["label"].to_numpy()[rows]
    p = panels(model, build_method("fooling"), np.asarray(ds.images[rows]), labels)
    draw(p, labels, "k2", tmp_path / "ref.png")
    assert res.path.read_bytes() == (tmp_path / "ref.png").read_bytes()


def test_labels_beyond_the_model_classes_are_refused(tmp_path):
    """One line, exit 2, no PNG; docs/robustness.md ("Multi-class figures") quotes the message."""
    prepared = _prepared(tmp_path / "gaze", 3, names=CLASSES)
    _model_pt(tmp_path / "model.pt", 2)
    out = tmp_path / "fig.png"
    proc = run_cli(
        ["visualize", "--checkpoint", str(tmp_path / "model.pt"), "--prepared", str(prepared)]
        + ["--out", str(out)],
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1].replace(str(tmp_path), "<tmp>")
    assert line == (
        "error: <tmp>/gaze: holds label 2, but <tmp>/model.pt has 2 classes; visualise the model "
        "with the prepared data it was trained on"
    )
    assert f"`` {line} ``" in (ROOT / "docs" / "robustness.md").read_text()
    assert not out.exists() and not list(tmp_path.glob("*.png*"))


def test_a_multiclass_model_on_binary_data_is_refused(tmp_path):
    """The reverse mismatch (3 outputs, binary data): one line naming it, exit 2, no PNG."""
    prepared = _prepared(tmp_path / "bin", 2)
    _model_pt(tmp_path / "model.pt", 3)
    out = tmp_path / "fig.png"
    proc = run_cli(
        ["visualize", "--checkpoint", str(tmp_path / "model.pt"), "--prepared", str(prepared)]
        + ["--out", str(out)],
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1].replace(str(tmp_path), "<tmp>")
    assert line == (
        "error: <tmp>/model.pt: the model has 3 outputs, but <tmp>/bin/meta.json lists no classes "
        "(a binary dataset: 2 classes, 0 and 1); visualise it on the data the model was trained on"
    )
    assert not out.exists() and not list(tmp_path.glob("*.png*"))


def _planned(configfile) -> dict[str, int]:
    """{rule: jobs} of `snakemake -n` (plans only)."""
    proc = subprocess.run(
        [str(tool_bin() / "snakemake"), "-n", "--quiet", "rules", "--configfile", str(configfile)],
        cwd=ROOT,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    block = (proc.stdout + proc.stderr).split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


@pytest.mark.integration
def test_workflow_plans_pair_panels_for_multiclass_runs_only(tmp_path):
    """config/multiclass.yaml's gaze3 (K = 3): one `visualize_pairs` job per CAM-head method at
    the lowest seed (gazegnn has no CAMs; seed 1 is not drawn again); the binary CI config: none."""
    cfg = yaml.safe_load((ROOT / "config" / "multiclass.yaml").read_text())
    main = cfg["experiments"]["main"]
    main.update(methods=["xent", "cyborg", "difference", "gazegnn"], seeds=[0, 1])
    cfg.update(experiments={"main": main}, data_dir=str(tmp_path / "d"))
    cfg["results_dir"] = str(tmp_path / "r")
    (tmp_path / "mc.yaml").write_text(yaml.safe_dump(cfg))
    counts = _planned(tmp_path / "mc.yaml")
    assert counts["train"] == 8 and counts["visualize_pairs"] == 3, counts
    assert "visualize_pairs" not in _planned(ROOT / ".test" / "config.yaml")


@pytest.mark.integration
def test_snakemake_draws_the_pair_panels_of_a_gaze3_run(tmp_path):
    """generate → prepare → train (K = 3) → visualize_pairs through Snakemake, with its log."""
    cfg = yaml.safe_load((ROOT / "config" / "multiclass.yaml").read_text())
    ds = cfg["datasets"]["gaze3"]
    ds.update(image_size=32, cam_grids=[4])
    ds["generator"].update(image_size=32, n_train=36, n_val=15, n_test=15)
    cfg["train"].update(epochs=1, batch_size=12)
    main = dict(cfg["experiments"]["main"], methods=["difference"], seeds=[0])
    cfg.update(experiments={"main": main}, data_dir=str(tmp_path / "d"), results_dir="results")
    cfg["model"]["weights"] = "none"
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    rel = "figures/difference_salience_pairs/gaze3/all/smallcnn/difference/base/seed0.png"
    argv = snakemake_argv(tmp_path, tmp_path / "cfg.yaml", f"results/{rel}", cores=2)
    run(argv, tmp_path, 600, env=workflow_env(ROOT))  # this checkout's package
    with Image.open(tmp_path / "results" / rel) as im:
        assert im.format == "PNG" and im.size[1] > im.size[0]  # six pair rows
    log = tmp_path / "logs" / "visualize_pairs" / "gaze3/all/smallcnn/difference/base/seed0.log"
    assert "wrote" in log.read_text()
