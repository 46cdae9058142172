"""Reporting: synthetic run directories (real run.json / metrics.json / scores.csv files) →
aggregate → stats → tables (CSV + LaTeX compiled by pdflatex) → figures (PNG)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _support import compile_latex
from PIL import Image
from scipy import stats as sps

from salience.errors import SalienceError
from salience.reporting import cli, grid, selection, tables
from salience.reporting.aggregate import (
    RUN_COLUMNS,
    collect_roc,
    collect_runs,
    find_run_dirs,
    read_runs_csv,
)
from salience.reporting.figures import build_all_figures, plot_roc
from salience.reporting.stats import paired_test, summarize

DATASETS = {  # name: (task, folds, subsets of the fold-"all" test set)
    "iris": ("iris", ["printouts", "artificial"], []),
    "face": ("face", ["all"], ["stylegan2", "progan"]),
    "chest": ("chest", ["all"], []),
}
BASE = {"xent": 0.80, "cyborg": 0.82, "difference": 0.81, "perclass": 0.79, "contrast": 0.84}
BASE |= {"sage": 0.86, "fooling": 0.60}
DS_OFF = {"iris": 0.0, "face": -0.2, "chest": 0.05}


def _auroc(
    run_id: str, dataset: str, subset_idx: int, backbone: str, variant: str, seed: int
) -> float:
    method = run_id.split("/")[3]
    v = BASE[method] + DS_OFF[dataset] - 0.01 * subset_idx + 0.005 * (backbone == "densenet121")
    if variant == "flipped":
        v -= 0.02 + 0.002 * seed
    elif "-" in variant:
        v -= 0.01 * abs(float(variant.split("-")[1]) - (2 if variant.startswith("tau") else 10))
    return round(v + random.Random(f"{run_id}:{subset_idx}").uniform(-0.01, 0.01), 6)


def make_run(
    root: Path,
    dataset: str,
    fold: str,
    backbone: str,
    method: str,
    variant: str,
    seed: int,
    cam: float | None = 0.5,
) -> Path:
    task, _, subsets = DATASETS[dataset]
    run_id = f"{dataset}/{fold}/{backbone}/{method}/{variant}/seed{seed}"
    d = root / run_id
    d.mkdir(parents=True)
    meta = {"run_id": run_id, "dataset": dataset, "task": task, "fold": fold, "backbone": backbone}
    meta |= {"method": method, "variant": variant, "seed": seed, "weights_origin": "random"}
    (d / "run.json").write_text(json.dumps(meta | {"config": {}}))
    pos_subsets = subsets if fold == "all" else [fold]
    keys = ["all", *pos_subsets] if fold == "all" else ["all", fold]
    au = {k: _auroc(run_id, dataset, i, backbone, variant, seed) for i, k in enumerate(keys)}
    if fold != "all":
        au[fold] = au["all"]
    n = {k: {"pos": 4 * max(1, len(pos_subsets)) if k == "all" else 4, "neg": 8} for k in keys}
    metrics = {"auroc": au, "auroc_sigmoid": {k: v - 0.001 for k, v in au.items()}, "n": n}
    metrics |= {"cam_agreement": cam, "best_epoch": 3, "epochs": 5}
    (d / "metrics.json").write_text(json.dumps(metrics))
    rng = np.random.default_rng(seed)
    subs = [""] * 8 + [s for s in (pos_subsets or [""]) for _ in range(4)]
    labels = [0] * 8 + [1] * (len(subs) - 8)
    p1 = np.clip(rng.uniform(0, 1, len(subs)) * 0.6 + 0.3 * np.array(labels), 0, 1)
    logit1 = np.log(p1 + 1e-6) - np.log(1 - p1 + 1e-6)
    pd.DataFrame(
        {
            "row": range(len(subs)),
            "split": "test",
            "subset": subs,
            "label": labels,
            "logit0": 0.0,
            "logit1": logit1,
            "p1": p1,
            "p_sigmoid1": 1 / (1 + np.exp(-logit1)),
        }
    ).to_csv(d / "scores.csv", index=False)
    return d


def _grid(root, methods, backbones, seeds, variant="base", datasets=DATASETS, cam=0.5):
    for ds in datasets:
        for fold in DATASETS[ds][1]:
            for bb in backbones:
                for m in methods:
                    for s in seeds:
                        c = None if (m == "xent" and bb == "densenet121") else cam
                        make_run(root, ds, fold, bb, m, variant, s, c)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _grid(root, ["cyborg", "difference", "perclass", "contrast"], ["densenet121"], range(3))
    _grid(root, ["xent", "sage"], ["resnet50"], range(6))  # 6 seeds: Wilcoxon is reported
    _grid(root, ["cyborg"], ["resnet50"], range(3))
    _grid(root, ["xent"], ["densenet121"], range(3))
    _grid(root, ["sage", "cyborg"], ["resnet50"], range(3), variant="flipped")
    for v in ("tau-1", "tau-2", "tau-3"):
        _grid(root, ["sage"], ["resnet50"], range(2), variant=v)
    for v in ("sigma-5", "sigma-10"):
        _grid(root, ["sage"], ["resnet50"], range(2), variant=v, datasets=["chest"])
    make_run(root, "chest", "all", "resnet50", "fooling", "base", 0, cam=0.1)
    return root


@pytest.fixture(scope="module")
def runs(runs_root) -> pd.DataFrame:
    return collect_runs(find_run_dirs(runs_root))


def _agg(t: grid.Table) -> pd.DataFrame:
    return t.data[t.data["kind"] == "aggregate"]


def _cell(t: grid.Table, row: str, col: str) -> pd.Series:
    a = _agg(t)
    hit = a[(a["row"] == row) & (a["col"] == col)]
    assert len(hit) == 1, (row, col)
    return hit.iloc[0]


# ---- aggregate ------------------------------------------------------------------------------------
def test_collect_runs_shape_and_values(runs_root, runs):
    dirs = find_run_dirs(runs_root)
    assert list(runs.columns) == RUN_COLUMNS
    assert runs["run_id"].nunique() == len(dirs)
    n_subsets = {"iris": 2, "face": 3, "chest": 1}  # all + held-out fold / all + 2 generators / all
    assert len(runs) == sum(n_subsets[d.parts[-6]] for d in dirs)
    row = runs[
        (runs["run_id"] == "face/all/resnet50/sage/base/seed4") & (runs["subset"] == "progan")
    ]
    meta = json.loads((runs_root / "face/all/resnet50/sage/base/seed4/metrics.json").read_text())
    assert row["auroc"].item() == meta["auroc"]["progan"]
    assert (row[["n_pos", "n_neg", "seed", "best_epoch"]].to_numpy() == [[4, 8, 4, 3]]).all()
    xent_dn = runs[(runs["method"] == "xent") & (runs["backbone"] == "densenet121")]
    assert xent_dn["cam_agreement"].isna().all()


def test_collect_roc(runs_root):
    d = runs_root / "face/all/resnet50/sage/base/seed0"
    roc = collect_roc([d], max_points=5)
    assert set(roc["subset"]) == {"all", "stylegan2", "progan"}
    for _, g in roc.groupby("subset"):
        assert len(g) <= 5 and g["fpr"].iloc[0] == 0 and g["tpr"].iloc[-1] == 1


def test_nan_auroc_raises_one_line_naming_the_file(tmp_path):
    d = make_run(tmp_path, "chest", "all", "resnet50", "xent", "base", 0)
    m = json.loads((d / "metrics.json").read_text())
    m["auroc"]["all"] = float("nan")
    (d / "metrics.json").write_text(json.dumps(m))  # json writes NaN literally
    with pytest.raises(SalienceError) as exc:
        collect_runs([d])
    msg = str(exc.value)
    assert str(d / "metrics.json") in msg and "\n" not in msg and "nan" in msg


def test_missing_files_raise(tmp_path):
    d = make_run(tmp_path, "chest", "all", "resnet50", "xent", "base", 0)
    (d / "scores.csv").unlink()
    with pytest.raises(SalienceError, match="scores.csv"):
        collect_roc([d])
    (d / "run.json").unlink()
    with pytest.raises(SalienceError, match="run.json"):
        collect_runs([d])


# ---- stats ------------------------------------------------------------------------------------------
def test_stats_match_scipy():
    x = [0.81, 0.84, 0.79, 0.86, 0.83]
    s = summarize(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert (
        s.n == 5
        and s.mean == pytest.approx(np.mean(x))
        and s.std == pytest.approx(np.std(x, ddof=1))
    )
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert summarize([0.8]) == type(s)(1, 0.8, None, None, None)
    a = dict(enumerate([0.81, 0.84, 0.79, 0.86, 0.83, 0.85, 0.80]))
    b = dict(enumerate([0.80, 0.82, 0.80, 0.83, 0.81, 0.82, 0.78])) | {9: 0.5}  # seed 9 unmatched
    t = paired_test(a, b)
    va, vb = list(a.values()), [b[k] for k in a]
    assert t.n == 7 and t.p_ttest == pytest.approx(sps.ttest_rel(va, vb).pvalue)
    assert t.p_wilcoxon == pytest.approx(sps.wilcoxon(va, vb).pvalue)
    five = paired_test({k: a[k] for k in range(5)}, b)
    assert five.p_ttest is not None and five.p_wilcoxon is None  # Wilcoxon only from 6 pairs
    assert paired_test({0: 0.8}, {0: 0.7}) == type(t)(1, None, None)
    assert paired_test(a, a).p_ttest is None  # zero-variance differences: undefined, not NaN


# ---- tables -----------------------------------------------------------------------------------------
def test_dd_t2_rows_columns_values(runs):
    t = tables.dd_t2(runs)
    assert [c for c in ("\\toprule", "\\midrule", "\\bottomrule") if c not in t.latex] == []
    assert t.latex.index("Chest") < t.latex.index("Iris") < t.latex.index("Face")  # DD order
    lines = [ln for ln in t.latex.splitlines() if ln.endswith("\\\\") and "$\\pm$" in ln]
    assert [ln.split(" & ")[0] for ln in lines] == [
        "Baseline (CYBORG)",
        "Difference Salience",
        "Per-class Salience",
        "Contrast Salience",
    ]
    assert "DD Table 2" in t.latex and "DenseNet-121" in t.latex
    sel = runs[(runs["backbone"] == "densenet121") & (runs["variant"] == "base")]
    chest = sel[
        (sel["dataset"] == "chest") & (sel["method"] == "contrast") & (sel["subset"] == "all")
    ]
    c = _cell(t, "contrast", "chest")
    assert c["mean"] == pytest.approx(chest["auroc"].mean())
    assert c["std"] == pytest.approx(chest["auroc"].std(ddof=1)) and c["n_seeds"] == 3
    # iris (leave-one-out): per seed the mean over folds of the held-out AUROC
    iris = sel[(sel["dataset"] == "iris") & (sel["subset"] == sel["fold"])]
    per_seed = iris[iris["method"] == "difference"].groupby("seed")["auroc"].mean()
    base = iris[iris["method"] == "cyborg"].groupby("seed")["auroc"].mean()
    c = _cell(t, "difference", "iris")
    assert c["mean"] == pytest.approx(per_seed.mean()) and c["fold"] == ""
    assert c["p_vs_baseline"] == pytest.approx(sps.ttest_rel(per_seed, base).pvalue)
    assert pd.isna(c["p_wilcoxon_vs_baseline"]) and c["baseline"] == "cyborg"
    assert pd.isna(_cell(t, "cyborg", "iris")["p_vs_baseline"])
    runs_part = t.data[t.data["kind"] == "run"]
    assert len(runs_part) == 4 * 3 * (2 + 1 + 1) and runs_part["run_id"].is_unique


def test_best_mean_is_bold(runs):
    t = tables.dd_t2(runs)
    a = _agg(t)
    for col in ("chest", "iris", "face"):
        best = a[a["col"] == col].sort_values("mean").iloc[-1]
        txt = f"{best['mean']:.3f} $\\pm$ {best['std']:.3f}"
        assert f"\\textbf{{{txt}}}" in t.latex
    assert t.latex.count("\\textbf") == 3


def test_dd_subset_tables(runs):
    t3, t4 = tables.dd_t3(runs), tables.dd_t4(runs)
    assert list(dict.fromkeys(_agg(t3)["col_label"])) == ["Artificial", "Printouts"]
    assert list(dict.fromkeys(_agg(t4)["col_label"])) == ["ProGAN", "StyleGAN2"]  # paper order
    c = _cell(t3, "perclass", "iris:artificial")
    sel = runs[(runs["fold"] == "artificial") & (runs["subset"] == "artificial")]
    assert c["mean"] == pytest.approx(sel[sel["method"] == "perclass"]["auroc"].mean())
    assert set(_agg(t4)["row"]) == set(tables.S.DD_METHODS)


def test_sage_tables(runs):
    t1 = tables.sage_t1(runs)
    assert list(dict.fromkeys(_agg(t1)["row"])) == ["xent", "cyborg", "sage"]  # only methods run
    assert list(dict.fromkeys(_agg(t1)["col"])) == ["iris", "face", "chest"]
    c = _cell(t1, "sage", "chest")
    assert c["n_seeds"] == 6 and c["backbone"] == "resnet50"
    sel = runs[
        (runs["backbone"] == "resnet50")
        & (runs["variant"] == "base")
        & (runs["dataset"] == "chest")
    ]
    a, b = (sel[sel["method"] == m].set_index("seed")["auroc"] for m in ("sage", "xent"))
    assert c["p_wilcoxon_vs_baseline"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    t2 = tables.sage_t2(runs)
    rows = list(dict.fromkeys(_agg(t2)["row"]))
    assert rows == [
        "xent/resnet50",
        "xent/densenet121",
        "cyborg/resnet50",
        "cyborg/densenet121",
        "sage/resnet50",
    ]
    assert _cell(t2, "cyborg/densenet121", "face")["baseline"] == "xent"
    t3 = tables.sage_t3(runs)
    assert list(dict.fromkeys(_agg(t3)["col"])) == ["human", "flipped", "delta"]
    d = _cell(t3, "sage/iris", "delta")
    h, f = _cell(t3, "sage/iris", "human"), _cell(t3, "sage/iris", "flipped")
    assert d["n_seeds"] == 3 and d["baseline"] == "flipped (paired)" and d["p_vs_baseline"] > 0
    # human-map cell uses 6 seeds, the paired difference only the 3 seeds with flipped runs
    assert h["n_seeds"] == 6 and f["n_seeds"] == 3
    t4, t5 = tables.sage_t4(runs), tables.sage_t5(runs)
    assert list(dict.fromkeys(_agg(t4)["row"])) == ["1", "2", "3"]
    assert list(dict.fromkeys(_agg(t5)["row"])) == ["5", "10"] and set(_agg(t5)["col"]) == {"chest"}
    assert _cell(t4, "1", "face")["baseline"] == "tau-2" and "$\\tau$" in t4.latex
    ag = tables.agreement(runs)
    assert "fooling/resnet50" in set(_agg(ag)["row"])
    assert "xent/densenet121" not in set(_agg(ag)["row"])  # null agreement → row omitted


def test_missing_and_empty_tables(runs, tmp_path):
    no_dd = runs[runs["method"] != "perclass"]
    assert "perclass" not in set(tables.dd_t2(no_dd).data["row"])
    empty = tables.dd_t2(runs[runs["method"] == "sage"])
    assert empty.data.empty and list(empty.data.columns) == grid.TABLE_COLUMNS
    assert "no runs for this table" in empty.latex.lower()
    csv, _ = grid.write_table(empty, tmp_path)
    assert csv.read_text().strip() == ",".join(grid.TABLE_COLUMNS)
    allt = tables.build_all(runs.iloc[0:0], papers=["dd", "sage"])
    assert [t.id for t in allt] == tables.TABLE_IDS and all(t.data.empty for t in allt)
    assert [t.id for t in tables.build_all(runs.iloc[0:0])] == ["agreement"]  # no paper's runs


def test_latex_compiles_with_pdflatex(runs, tmp_path):
    body = [t.latex for t in tables.build_all(runs)]
    body.append(tables.sage_t3(runs[runs["variant"] == "base"]).latex)  # an empty-table stub
    pdf = compile_latex("\n\\clearpage\n".join(body), tmp_path)
    assert pdf.stat().st_size > 1000


# ---- figures and CLI --------------------------------------------------------------------------------
def _is_png(path: Path) -> bool:
    with Image.open(path) as im:
        im.verify()
        return im.format == "PNG"


def test_figures_are_valid_pngs(runs_root, runs, tmp_path):
    roc = collect_roc(find_run_dirs(runs_root)[::7])
    paths = build_all_figures(runs, roc, tmp_path)
    assert [p.name for p in paths] == [
        "roc.png",
        "seed_auroc.png",
        "ablation_tau.png",
        "ablation_sigma.png",
        "cam_agreement.png",
    ]
    assert all(_is_png(p) for p in paths)
    assert _is_png(plot_roc(roc.iloc[0:0], tmp_path / "empty.png"))
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporaries


def test_cli_end_to_end(runs_root, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    picked = [d.relative_to(runs_root) for d in find_run_dirs(runs_root) if "seed0" in d.name]
    listing.write_text("\n".join(map(str, picked)) + "\n")
    out = tmp_path / "out"
    args = [
        "aggregate",
        "--runs-root",
        str(runs_root),
        "--run-list",
        str(listing),
        "--out-runs",
        str(out / "runs.csv"),
        "--out-roc",
        str(out / "roc.csv"),
    ]
    assert cli.main(args) == 0
    runs = read_runs_csv(out / "runs.csv")
    assert runs["run_id"].nunique() == len(picked) and (runs["seed"] == 0).all()
    assert (
        cli.main(["tables", "--runs", str(out / "runs.csv"), "--out-dir", str(out / "tables")]) == 0
    )
    for tid in tables.TABLE_IDS:
        data = pd.read_csv(out / "tables" / f"{tid}.csv")
        assert (out / "tables" / f"{tid}.tex").is_file()
        assert set(data["kind"]) <= {"run", "aggregate"}
    dd = pd.read_csv(out / "tables" / "dd_t2.csv")
    assert dd.loc[dd["kind"] == "aggregate", "std"].isna().all()  # one seed: empty std cells
    assert "$\\pm$ ---" in (out / "tables" / "dd_t2.tex").read_text()
    fig_args = ["figures", "--runs", str(out / "runs.csv"), "--roc", str(out / "roc.csv")]
    assert cli.main([*fig_args, "--out-dir", str(out / "fig")]) == 0
    assert _is_png(out / "fig" / "roc.png")
    assert cli.main(["tables", "--runs", str(tmp_path / "nope.csv"), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "nope.csv" in err[-1]


# ---- overview of every method run (issue 14) -------------------------------------------------------
BASE["mymethod"] = 0.83  # a method neither paper's tables list


def test_overview_lists_every_method_with_p_values_vs_chosen_baseline(tmp_path, capsys):
    root = tmp_path / "runs"
    both_papers = ["xent", "cyborg", "difference", "contrast", "sage", "mymethod"]
    _grid(root, both_papers, ["smallcnn"], range(3), datasets=["iris", "face"])
    csv = tmp_path / "runs.csv"
    runs = collect_runs(find_run_dirs(root))
    runs.to_csv(csv, index=False)
    out = tmp_path / "tables"
    args = ["tables", "--runs", str(csv), "--out-dir", str(out), "--baseline", "cyborg"]
    assert cli.main(args) == 0
    ov = pd.read_csv(out / "overview.csv", keep_default_na=False)
    agg = ov[ov["kind"] == "aggregate"]
    assert sorted(set(agg["row"])) == sorted(both_papers)  # nothing dropped, mymethod included
    assert set(agg["col"]) == {"iris", "face"} and (agg["n_seeds"] == "3").all()
    assert (agg["baseline"].replace("", "cyborg") == "cyborg").all()
    # p-value of each cell = paired t-test of its per-seed values (iris: mean over held-out
    # folds; face: mean over generators) against cyborg's, recomputed here from runs.csv
    u = selection.overall(runs.assign(value=runs["auroc"]), prefer_loo=True)
    per_seed = u.groupby(["method", "dataset", "seed"])["value"].mean()
    for m in set(both_papers) - {"cyborg"}:
        for ds in ("iris", "face"):
            p = sps.ttest_rel(per_seed[m][ds], per_seed["cyborg"][ds]).pvalue
            cell = agg[(agg["row"] == m) & (agg["col"] == ds)].iloc[0]
            assert float(cell["p_vs_baseline"]) == pytest.approx(p), (m, ds)
            assert float(cell["ci_low"]) < float(cell["mean"]) < float(cell["ci_high"])
    assert (agg.loc[agg["row"] == "cyborg", "p_vs_baseline"] == "").all()
    tex = (out / "overview.tex").read_text()
    assert "mymethod" in tex and "CYBORG" in tex and "Difference Salience" in tex
    # a baseline that was not run: one line naming the methods that were, nothing written
    bad = tmp_path / "bad"
    for flag, name in (("--baseline", "perclass"), ("--dd-baseline", "xent")):
        assert cli.main(["tables", "--runs", str(csv), "--out-dir", str(bad), flag, name]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0] and flag in err[0] and "difference" in err[0]
        assert not bad.exists()


def test_figures_and_tables_with_nothing_to_show_are_left_out_with_a_reason(runs_root, tmp_path):
    """Issue 14: no placeholder figure or empty table reaches the report; the overview page says
    which were left out and why; each table with cells is rendered as HTML (bold = best)."""
    base = collect_runs(find_run_dirs(runs_root))
    base = base[(base["variant"] == "base") & (base["dataset"] == "chest")]
    base = base.assign(cam_agreement=np.nan)  # as a study whose test images have no maps
    roc = collect_roc(find_run_dirs(runs_root)[::7])
    names = [p.name for p in build_all_figures(base, roc, tmp_path / "fig")]
    assert names == ["roc.png", "seed_auroc.png"]
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == sorted(names)
    csv = tmp_path / "runs.csv"
    base.to_csv(csv, index=False)
    args = ["tables", "--runs", str(csv), "--out-dir", str(tmp_path / "t")]
    assert (
        cli.main([*args, "--html-dir", str(tmp_path / "h"), "--csv-dir", str(tmp_path / "c")]) == 0
    )
    html = {p.stem: p.read_text() for p in (tmp_path / "h").glob("*.html")}
    assert {"overview", "dd_t2", "sage_t1"} <= set(html) and "sage_t4" not in html
    assert "agreement" not in html and sorted(html) == sorted(
        p.stem for p in (tmp_path / "c").iterdir()
    )
    ov = html["overview"]
    assert "<code>sage_t4</code>: no τ ablation in this config" in ov
    assert "<code>agreement</code>: no test maps: agreement needs annotated test images" in ov
    assert "<code>ablation_sigma.png</code>: no σ ablation in this config" in ov
    from salience.reporting.figures import figure_reasons

    rq1 = "DD RQ1 (rq1 table, deletion curves)"
    assert (rq1 in figure_reasons(base)) == (not (base["method"] == "fooling").any())
    no_fooling = figure_reasons(base[base["method"] != "fooling"])
    assert no_fooling[rq1] == "no passive-fooling runs in this config"
    agreement_tex = (tmp_path / "t" / "agreement.tex").read_text()
    assert "No test maps: agreement needs annotated test images" in agreement_tex
    assert "no runs" not in agreement_tex.lower()
    t1 = html["sage_t1"]
    assert "<b>0.9" in t1 and " ± " in t1 and "$" not in t1 and "\\" not in t1
    assert "Backbones randomly initialised" in t1 and "n = " in t1 and "logit margin" in t1


def test_every_method_gets_its_own_colour():
    """The demo runs twelve methods: a ten-colour palette gave two methods the same line colour."""
    from salience.reporting.figures import _palette
    from salience.reporting.style import ALL_METHODS

    colours = _palette(ALL_METHODS)
    assert len(colours) == len(ALL_METHODS) and len(set(colours.values())) == len(ALL_METHODS)
