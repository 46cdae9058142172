"""The papers' tables as pure functions: tidy run frame (aggregate.collect_runs) → `Table`.

Each table picks its runs and values (reporting/selection.py: which variant, methods, backbone, and
a dataset's "overall" AUROC) and lays them out as a grid of cells (reporting/grid.py: mean ± std
over seeds, paired tests, bold, captions, the tidy CSV frame). Rows and columns come from the runs
present; order and names follow the papers (style.py).

Which tables a study writes (`build_all`): each paper's tables when the runs hold at least two of
that paper's methods (DD: Baseline + its losses; SAGE: Xent and the baselines), so no paper mirror
is built from a single method; the agreement table always.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from salience.reporting import style as S
from salience.reporting.aggregate import num_classes
from salience.reporting.cells import overall_note
from salience.reporting.grid import Comparison, Layout, Table, build, empty_table
from salience.reporting.selection import (
    keyed,
    one_backbone,
    overall,
    per_subset,
    select,
    task_cols,
)

DF, Opt = pd.DataFrame, str | None


def _by_task(
    layout: Layout,
    u: DF,
    order: list[str],
    *,
    baseline: str,
    base_name: str | None = None,
    dd: bool = False,
) -> Table:
    """Rows = methods (or the ablation values already in `row`), one column per task in `order`;
    `layout` gives the id, caption, metric and stub (its rows and columns are filled in here)."""
    if "row" in u:
        rows = [(r, (r,)) for r in sorted(u["row"].unique(), key=float)]
    else:
        u, rows = keyed(u, ["method"], [S.ALL_METHODS], [lambda m: S.method_name(m, dd)])
    cols = task_cols(u, order)
    full = Layout(
        layout.tid, layout.caption + overall_note(u), layout.metric, layout.stub, rows, cols
    )
    compare = Comparison(lambda r: baseline, base_name or baseline)
    return build(full, u.assign(col=u["dataset"]), compare)


# ---- DD Tables 2–4 -------------------------------------------------------------------------------
def dd_t2(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 2: overall AUROC, rows Baseline (CYBORG)/Difference/Per-class/Contrast × tasks."""
    d, bname = one_backbone(select(runs, metric, S.DD_METHODS), backbone, "densenet121")
    cap = f"Mirrors DD Table 2: overall {S.metric_tex(metric)} per task ({bname})."
    u = overall(d, prefer_loo=True)
    layout = Layout("dd_t2", cap, metric, ["Method"], [], [])
    return _by_task(layout, u, S.DD_TASK_ORDER, baseline=baseline, dd=True)


def _dd_subsets(
    tid: str, task: str, runs: DF, metric: str, *, baseline: str, backbone: Opt
) -> Table:
    """DD Tables 3–4: `task`'s runs, one column per held-out subset (iris) or generator (face)."""
    d = select(runs[runs["task"] == task], metric, S.DD_METHODS)
    d, bname = one_backbone(d, backbone, "densenet121")
    u, rows = keyed(per_subset(d), ["method"], [S.DD_METHODS], [lambda m: S.method_name(m, True)])
    u = u.assign(col=u["dataset"] + ":" + u["subset"])
    keys = u[["col", "dataset", "subset"]].drop_duplicates()
    subs, multi = S.ordered_subsets(keys["subset"]), keys["dataset"].nunique() > 1
    keys = sorted(keys.itertuples(index=False), key=lambda k: (k[1], subs.index(k[2])))
    cols = [(c, (f"{ds}: " if multi else "") + S.subset_name(s)) for c, ds, s in keys]
    what = "held-out attack type" if task == "iris" else "generator"
    cap = f"Mirrors DD Table {tid[-1]}: {S.metric_tex(metric)} per {what} ({bname})."
    layout = Layout(tid, cap, metric, ["Method"], rows, cols)
    return build(layout, u, Comparison(lambda r: baseline, baseline))


def dd_t3(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 3: iris PAD, one column per held-out attack type (AUROC on subset == fold)."""
    return _dd_subsets("dd_t3", "iris", runs, metric, baseline=baseline, backbone=backbone)


def dd_t4(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 4: synthetic faces, one column per generator (same real images vs that generator)."""
    return _dd_subsets("dd_t4", "face", runs, metric, baseline=baseline, backbone=backbone)


# ---- SAGE Tables 1–5 and CAM agreement -----------------------------------------------------------
def sage_t1(runs: DF, metric: str = "auroc", baseline: str = "xent", backbone: Opt = None) -> Table:
    """SAGE Table 1: 8 methods × Iris/Face/Chest, one backbone (ResNet50 in the paper)."""
    d, bname = one_backbone(select(runs, metric, S.SAGE_METHODS), backbone, "resnet50")
    cap = f"Mirrors SAGE Table 1: {S.metric_tex(metric)} per task ({bname})."
    u = overall(d, prefer_loo=False)
    layout = Layout("sage_t1", cap, metric, ["Method"], [], [])
    return _by_task(layout, u, S.SAGE_TASK_ORDER, baseline=baseline)


def _second(row: str) -> str:
    return row.split("/", 1)[1]


def _by_backbone(tid: str, cap: str, d: DF, metric: str, baseline: str) -> Table:
    """Rows = method × backbone (SAGE Table 2 layout); bold and baseline within each backbone."""
    fields, orders = ["method", "backbone"], [S.ALL_METHODS, S.BACKBONE_ORDER]
    u, rows = keyed(overall(d, False), fields, orders, [S.method_name, S.backbone_name])
    u, cols = u.assign(col=u["dataset"]), task_cols(u, S.SAGE_TASK_ORDER)
    cap += overall_note(u)
    base_of = lambda r: f"{baseline}/{_second(r)}"  # noqa: E731
    layout = Layout(tid, cap, metric, ["Method", "Backbone"], rows, cols)
    return build(layout, u, Comparison(base_of, baseline, _second, "backbone"))


def _in_sage_t2(d: DF) -> pd.Series:
    """Rows SAGE Table 2 prints: its methods, without the (method, backbone) pairs it omits."""
    pair = pd.Series(list(zip(d["method"], d["backbone"])), index=d.index)
    return d["method"].isin(S.SAGE_T2_METHODS) & ~pair.isin(S.SAGE_T2_ABSENT)


def sage_t2(runs: DF, metric: str = "auroc", baseline: str = "xent") -> Table:
    """SAGE Table 2: methods × backbones × tasks, only the rows the paper has (no GG-CAM or
    Gaze-GNN, no CYBORG on Swin-T; those go to `sage_t2_extended`); bold = best per backbone."""
    cap = f"Mirrors SAGE Table 2: {S.metric_tex(metric)} per backbone and task."
    d = select(runs, metric, S.SAGE_METHODS)
    return _by_backbone("sage_t2", cap, d[_in_sage_t2(d)], metric, baseline)


def sage_t2_extended(runs: DF, metric: str = "auroc", baseline: str = "xent") -> Table:
    """The SAGE method × backbone runs beyond SAGE Table 2's rows (e.g. GG-CAM and Gaze-GNN on
    every backbone, CYBORG on Swin-T), with the Xent rows of their backbones as the reference."""
    d = select(runs, metric, S.SAGE_METHODS)
    extra = d[~_in_sage_t2(d)]
    ref = d[(d["method"] == baseline) & d["backbone"].isin(extra["backbone"].unique())]
    cap = f"SAGE methods beyond SAGE Table 2's rows (no paper counterpart): {S.metric_tex(metric)} "
    cap += f"per backbone and task, with {S.tex(S.method_name(baseline))} as reference."
    if extra.empty:
        return empty_table("sage_t2_extended", cap)
    return _by_backbone("sage_t2_extended", cap, pd.concat([ref, extra]), metric, baseline)


def agreement(runs: DF, baseline: str = "xent") -> Table:
    """CAM–human-map agreement per method × backbone × task (no paper table; complements Table 3)."""
    cap = (
        "CAM--human-map agreement per method, backbone and task (no paper counterpart): the mean "
        "over annotated test images of Pearson's r between the min-max normalised true-class CAM "
        "and the human map on the CAM grid (1: same pattern, 0: unrelated, $-1$: opposite)."
    )
    d = select(runs, "cam_agreement", None)
    if d.empty and not runs.empty:  # runs, but none scored against human maps
        return empty_table("agreement", cap, NO_TEST_MAPS)
    return _by_backbone("agreement", cap, d, "cam_agreement", baseline)


NO_TEST_MAPS = "no test maps: agreement needs annotated test images (and models with a CAM)"


def sage_t3(runs: DF, metric: str = "auroc", backbone: Opt = None) -> Table:
    """SAGE Table 3 (sanity check): human maps h vs flipped maps 1 − h, and their difference."""
    methods = select(runs, metric, None, "flipped")["method"].unique()
    d = select(runs[runs["variant"].isin(["base", "flipped"])], metric, methods, None)
    d, bname = one_backbone(d, backbone, "resnet50")
    u = overall(d, prefer_loo=False)
    tcols = task_cols(u, S.SAGE_TASK_ORDER)
    orders = [S.ALL_METHODS, [c for c, _ in tcols]]
    u, rows = keyed(u, ["method", "dataset"], orders, [S.method_name, dict(tcols).get])
    u = u.assign(col=u["variant"].map({"base": "human", "flipped": "flipped"}))
    cols = [
        ("human", "Saliency maps h"),
        ("flipped", "Non-salient maps 1-h"),
        ("delta", "Difference"),
    ]
    cap = f"Mirrors SAGE Table 3 (sanity check): {S.metric_tex(metric)} with human maps $h$, flipped maps "
    cap += f"$1-h$, and their paired difference ({bname}).{overall_note(u)}"
    layout = Layout("sage_t3", cap, metric, ["Method", "Dataset"], rows, cols)
    compare = Comparison(None, "", _second, "dataset", ("human", "flipped", "delta"))
    return build(layout, u, compare)


@dataclass(frozen=True)
class Ablation:
    """A SAGE ablation table: `tid`, the variant prefix (runs `<prefix>-<value>`), the parameter's
    LaTeX symbol and the paper's value (the paired tests' baseline row)."""

    tid: str
    prefix: str
    symbol: str
    default: float


def _ablation(ab: Ablation, runs: DF, metric: str, method: str, backbone: Opt) -> Table:
    """Rows = the values of `ab`'s parameter that `method` ran with, one column per task."""
    d = select(runs[runs["variant"].str.startswith(ab.prefix + "-")], metric, [method], None)
    d, bname = one_backbone(d, backbone, "resnet50")
    value = pd.to_numeric(d["variant"].str.split("-", n=1).str[1], errors="coerce")
    u = overall(d.assign(param=value).dropna(subset=["param"]), prefer_loo=False)
    u, base = u.assign(row=u["param"].map(lambda v: f"{v:g}")), f"{ab.default:g}"
    cap = f"Mirrors SAGE Table {ab.tid[-1]}: ablation of {ab.symbol} for "
    cap += f"{S.tex(S.method_name(method))}, {S.metric_tex(metric)} ({bname}); p-values vs {ab.symbol} = {base}."
    layout = Layout(ab.tid, cap, metric, [ab.symbol], [], [])
    return _by_task(layout, u, S.SAGE_TASK_ORDER, baseline=base, base_name=f"{ab.prefix}-{base}")


def sage_t4(
    runs: DF, metric: str = "auroc", method: str = "sage", backbone: Opt = None, default: float = 2
) -> Table:
    """SAGE Table 4: temperature τ (variants tau-<v>); paired tests against the paper's τ = 2."""
    return _ablation(Ablation("sage_t4", "tau", r"$\tau$", default), runs, metric, method, backbone)


def sage_t5(
    runs: DF, metric: str = "auroc", method: str = "sage", backbone: Opt = None, default: float = 10
) -> Table:
    """SAGE Table 5: Gaussian blur σ (variants sigma-<v>); paired tests against the paper's σ = 10."""
    return _ablation(
        Ablation("sage_t5", "sigma", r"$\sigma$", default), runs, metric, method, backbone
    )


PAPER_TABLES = {
    "dd": ["dd_t2", "dd_t3", "dd_t4"],
    "sage": ["sage_t1", "sage_t2", "sage_t2_extended", "sage_t3", "sage_t4", "sage_t5"],
}
TABLE_IDS = [*PAPER_TABLES["dd"], *PAPER_TABLES["sage"], "agreement"]
PAPER_METHODS = {"dd": S.DD_METHODS, "sage": S.SAGE_METHODS}


def papers_of(runs: DF) -> list[str]:
    """The papers whose tables these runs can fill: at least two of the paper's methods ran, so
    no paper mirror is built from a single method (a SAGE study's CYBORG runs make no DD table)."""
    present = set(runs["method"])
    return [p for p, methods in PAPER_METHODS.items() if len(present & set(methods)) >= 2]


def build_all(
    runs: DF,
    metric: str = "auroc",
    dd_base: str = "cyborg",
    sage_base: str = "xent",
    papers: list[str] | None = None,
) -> list[Table]:
    """The tables of `papers` (default: `papers_of(runs)`) in TABLE_IDS order, empty ones
    included, then the agreement table; baselines of the paired tests per paper. The paper
    tables hold binary tasks only (the papers' tasks); multi-class runs are in the overview."""
    papers = papers_of(runs) if papers is None else papers
    out, binary = [], runs[num_classes(runs) == 2]
    if "dd" in papers:
        out += [f(binary, metric, dd_base) for f in (dd_t2, dd_t3, dd_t4)]
    if "sage" in papers:
        out += [sage_t1(binary, metric, sage_base), sage_t2(binary, metric, sage_base)]
        out += [sage_t2_extended(binary, metric, sage_base)]
        out += [sage_t3(binary, metric), sage_t4(binary, metric), sage_t5(binary, metric)]
    return [*out, agreement(runs, sage_base)]
