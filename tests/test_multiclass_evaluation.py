"""K-class evaluation and reporting (issue 12 §5) through the CLI on a hand-made 3-class prepared
dataset and a K = 3 Classifier: metrics.json's macro one-vs-rest AUROC, per-class AUROC, accuracy
and confusion equal sklearn's; scores.csv has logit0..2 and p0..2; model selection's val_auroc is
the macro AUROC; aggregate/tables report the macro AUROC with the caption note and keep the run out
of the ROC curves and the paper tables; RQ1 refuses; binary outputs keep their layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _support import run_cli
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

from salience import checkpoint as ckpt
from salience import config as C
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError, DataError
from salience.evaluation import faithfulness as FA
from salience.evaluation.multiclass import subset_groups
from salience.evaluation.rq1 import refuse_multiclass
from salience.models.base import Classifier, build_backbone
from salience.reporting import aggregate as A
from salience.reporting.figures import figure_reasons
from salience.reporting.tables import build_all
from salience.scores import auroc, logit_margin, val_auroc

CLASSES = ["normal", "chf", "pneumonia"]
SIZE = 32


def write_prepared(root: Path, classes: list[str] | None, n_per: int = 8) -> Path:
    """A prepared folder written by hand: per class a brightness level (so a random CNN's logits
    differ by class), test rows of class 1 split into subsets "a" and "b"."""
    rng = np.random.default_rng(3)
    k = len(classes) if classes else 2
    rows, images = [], []
    for split in ("train", "val", "test"):
        for c in range(k):
            for i in range(n_per):
                sub = ("a" if i % 2 else "b") if (split == "test" and c == 1) else ""
                rows.append([split, c, sub, f"images/{split}/{c}_{i}.png", True])
                img = rng.integers(0, 60, (SIZE, SIZE, 3)) + 60 * c
                images.append(img.astype(np.uint8))
    root.mkdir(parents=True)
    cols = ["split", "label", "subset", "image", "has_map"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "index.csv", index=False)
    np.save(root / "images.npy", np.stack(images))
    np.save(root / "maps.npy", rng.integers(0, 255, (len(rows), SIZE, SIZE)).astype(np.uint8))
    meta = {"name": root.name, "image_size": SIZE, "cam_grids": [4]}
    (root / "meta.json").write_text(json.dumps(meta | ({"classes": classes} if classes else {})))
    return root


def write_model(path: Path, k: int) -> Path:
    torch.manual_seed(1)
    model = Classifier(build_backbone("smallcnn", weights="none"), num_classes=k)
    meta = {"backbone": "smallcnn", "method": "xent", "stage": "train", "best_epoch": 1}
    ckpt.save({"state_dict": model.state_dict(), "meta": meta | {"num_classes": k}}, path)
    return path


def evaluate(tmp: Path, prepared: Path, model: Path, out: str) -> tuple[dict, pd.DataFrame]:
    args = ["evaluate", "--checkpoint", str(model), "--prepared", str(prepared)]
    run_cli([*args, "--out", str(tmp / out)])
    metrics = json.loads((tmp / out / "metrics.json").read_text())
    return metrics, pd.read_csv(tmp / out / "scores.csv", keep_default_na=False)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def three_class(tmp_path_factory) -> tuple[Path, dict, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("k3")
    prepared = write_prepared(tmp / "prepared", CLASSES)
    metrics, scores = evaluate(tmp, prepared, write_model(tmp / "m.pt", 3), "run")
    return tmp, metrics, scores


def test_metrics_json_equals_sklearn_one_vs_rest(three_class) -> None:
    _, m, scores = three_class
    assert list(scores.columns) == [
        *["row", "split", "subset", "label"],
        *[f"logit{c}" for c in range(3)],
        *[f"p{c}" for c in range(3)],
    ]
    y = scores["label"].to_numpy()
    z = scores[["logit0", "logit1", "logit2"]].to_numpy(np.float64)
    p = softmax(z)
    assert np.allclose(scores[["p0", "p1", "p2"]].to_numpy(), p, atol=1e-6)
    macro = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert 0.05 < abs(macro - 0.5) < 0.5  # brightness ranks the rows: no ties, no perfect split
    assert m["auroc"]["all"] == pytest.approx(macro, abs=1e-12)
    each = roc_auc_score(y, p, multi_class="ovr", average=None)
    per_class = [m["auroc_per_class"][c] for c in CLASSES]  # json sorts the keys
    assert per_class == pytest.approx(list(each), abs=1e-12)
    assert m["classes"] == CLASSES
    assert m["accuracy"] == accuracy_score(y, p.argmax(1))
    assert m["confusion"] == confusion_matrix(y, p.argmax(1)).tolist()
    # subset "a": its rows plus every row of the classes without a row of "a" (normal, pneumonia)
    keep = (scores["subset"] == "a").to_numpy() | (y != 1)
    sub = roc_auc_score(y[keep], p[keep], multi_class="ovr", average="macro")
    assert sorted(m["auroc"]) == ["a", "all", "b"]
    assert m["auroc"]["a"] == pytest.approx(sub, abs=1e-12)
    assert m["n"]["a"] == {"neg": 8, "pos": 12, "classes": {"normal": 8, "chf": 4, "pneumonia": 8}}


def test_val_auroc_is_macro_for_k3_and_unchanged_for_k2() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    z = rng.normal(size=(120, 3)) + np.eye(3)[y]
    got, constant = val_auroc(y, z, "val")
    assert got == pytest.approx(roc_auc_score(y, softmax(z), multi_class="ovr"), abs=1e-12)
    assert not constant and val_auroc(y, np.zeros((120, 3)), "val") == (0.5, True)
    y2, z2 = y % 2, z[:, :2]
    assert val_auroc(y2, z2, "val") == (auroc(y2, logit_margin(z2), "val"), False)
    with pytest.raises(DataError, match=r"val: class\(es\) 2 of 3 have no rows"):
        val_auroc(y % 2, z, "val")


def test_subset_groups_reduce_to_the_binary_rule() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    subsets = np.array(["", "", "x", "y", "x"], dtype=object)
    groups = subset_groups(labels, subsets)
    assert groups["x"].tolist() == [True, True, True, False, True]  # all label 0 + label-1 of x


def test_reporting_macro_auroc_with_caption_and_no_binary_curve(three_class) -> None:
    tmp, m, _ = three_class
    run = tmp / "run"
    meta = {"run_id": "k3", "dataset": "gaze3", "task": "gaze3", "fold": "all"}
    meta |= {"backbone": "smallcnn", "method": "xent", "variant": "base", "seed": 0}
    (run / "run.json").write_text(json.dumps(meta))
    runs = A.collect_runs([run])
    assert runs["num_classes"].tolist() == [3, 3, 3]
    assert runs.set_index("subset").loc["all", "auroc"] == m["auroc"]["all"]
    assert A.collect_roc([run]).empty
    with pytest.raises(Exception, match="multi-class model"):
        A.read_scores(run)
    args = ["aggregate", "--runs-root", str(run.parent), "--run-list", str(tmp / "list.txt")]
    (tmp / "list.txt").write_text("run\n")
    run_cli([*args, "--out-runs", str(tmp / "runs.csv"), "--out-roc", str(tmp / "roc.csv")])
    out = tmp / "tables"
    run_cli(["tables", "--runs", str(tmp / "runs.csv"), "--out-dir", str(out)])
    table = pd.read_csv(out / "overview.csv")
    assert "macro one-vs-rest AUROC" in (out / "overview.tex").read_text()
    cell = table[(table["kind"] == "run")]["value"].astype(float).tolist()
    assert cell == [pytest.approx(m["auroc"]["all"])]
    csv_runs = A.read_runs_csv(tmp / "runs.csv")
    reasons = figure_reasons(csv_runs)
    assert "multi-class tasks have one ROC per class" in reasons["ROC curves of gaze3"]
    sage_t1 = build_all(csv_runs, papers=["sage"])[0]  # the papers' tables: binary tasks only
    assert sage_t1.id == "sage_t1" and (sage_t1.data["kind"] != "run").all()


def test_binary_layout_unchanged_and_rq1_refuses_k3(tmp_path, three_class) -> None:
    prepared = write_prepared(tmp_path / "bin", None)
    m, scores = evaluate(tmp_path, prepared, write_model(tmp_path / "b.pt", 2), "out")
    assert list(scores.columns)[4:] == ["logit0", "logit1", "p1", "p_sigmoid1"]
    assert not {"classes", "accuracy", "confusion", "auroc_per_class"} & set(m)
    meta = {"run_id": "b", "dataset": "tiny", "task": "chest", "fold": "all"}
    meta |= {"backbone": "smallcnn", "method": "xent", "variant": "base", "seed": 0}
    (tmp_path / "out" / "run.json").write_text(json.dumps(meta))
    assert list(A.collect_runs([tmp_path / "out"]).columns) == A.RUN_COLUMNS
    assert len(A.collect_roc([tmp_path / "out"])) > 0
    spec = C.RunSpec("gaze3", "all", "smallcnn", "fooling", "base", 0)
    with pytest.raises(
        ConfigError, match=r"RQ1 .* dataset gaze3 has 3 classes; set rq1_fooled"
    ) as e:
        refuse_multiclass(PreparedDataset(three_class[0] / "prepared"), spec)
    k3 = three_class[0] / "prepared"
    args = ["evaluate", "--checkpoint", str(tmp_path / "b.pt"), "--prepared", str(k3)]
    proc = run_cli([*args, "--out", str(tmp_path / "wrong")], check=False)
    line = (
        f"error: {tmp_path / 'b.pt'}: the model has 2 outputs, but {k3}/meta.json lists 3 classes"
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(line)
    assert not (tmp_path / "wrong" / "metrics.json").exists()
    k3_model = three_class[0] / "m.pt"  # the reverse: a 3-class model on binary data
    args = ["evaluate", "--checkpoint", str(k3_model), "--prepared", str(prepared)]
    proc = run_cli([*args, "--out", str(tmp_path / "wrong3")], check=False)
    line = (
        f"error: {k3_model}: the model has 3 outputs, but {prepared}/meta.json lists no classes "
        f"(a binary dataset: 2 classes, 0 and 1); evaluate on the data the model was trained on"
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == line
    assert not (tmp_path / "wrong3").exists()
    with pytest.raises(DataError) as v:
        val_auroc(np.array([0, 1, 0, 1]), np.eye(4, 3), "val")
    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    for message in (str(e.value), str(v.value)):
        assert f"`` {message} ``" in doc


def test_console_lines_name_the_macro_auroc_for_k3(tmp_path, three_class) -> None:
    """K > 2: the evaluate/train console line and the job's `done` line say the AUROC is the macro
    one-vs-rest AUROC; binary lines keep their text."""
    from salience.run_cli import _done_line

    tmp, metrics, _ = three_class
    args = ["evaluate", "--checkpoint", str(tmp / "m.pt"), "--prepared", str(tmp / "prepared")]
    out = run_cli([*args, "--out", str(tmp_path / "again")]).stdout.strip().splitlines()[-1]
    all_ = metrics["auroc"]["all"]
    assert out.startswith(
        f"macro one-vs-rest AUROC over 3 classes ({tmp_path / 'again'}): all={all_:.3f}"
    )
    (tmp_path / "run.json").write_text(json.dumps({"best_epoch": 1}))
    pd.DataFrame({"epoch": [1], "val_auroc": [0.5]}).to_csv(tmp_path / "history.csv", index=False)
    assert _done_line("r", tmp_path, 0.75, 3) == (
        "done r: best epoch 1, val AUROC 0.500, test AUROC 0.750 "
        "(macro one-vs-rest AUROC, 3 classes)"
    )
    assert (
        _done_line("r", tmp_path, 0.75) == "done r: best epoch 1, val AUROC 0.500, test AUROC 0.750"
    )


def test_faithfulness_margin_is_over_the_strongest_competitor() -> None:
    logits = torch.tensor([[0.0, 2.0, 5.0], [1.0, -1.0, 0.5]])
    assert FA._margin(logits, torch.tensor([1, 0])).tolist() == [-3.0, 0.5]
    two, lab = torch.randn(16, 2), torch.randint(0, 2, (16,))
    old = (two.gather(1, lab.view(-1, 1)) - two.gather(1, 1 - lab.view(-1, 1))).squeeze(1)
    assert torch.equal(FA._margin(two, lab), old)  # K = 2: the binary definition, bit for bit


def test_docs_name_the_multiclass_columns_and_table() -> None:
    """docs/decisions.md's runs.csv note names every appended K-class column and README's
    results/tables/ row names the false_class table (reporting/multiclass.py)."""
    from salience.reporting.multiclass import TABLE_ID

    root = Path(__file__).resolve().parents[1]
    decisions = (root / "docs" / "decisions.md").read_text()
    note = next(
        ln for ln in decisions.splitlines() if ln.startswith("| K-class runs in the report")
    )
    assert f"runs.csv gains {len(A.MULTICLASS_COLUMNS)} last columns" in note.replace("two", "2")
    assert all(f"`{c}`" in note for c in A.MULTICLASS_COLUMNS)
    readme = (root / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| `results/tables/` |"))
    assert f"multi-class studies only `{TABLE_ID}`" in row
