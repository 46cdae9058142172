"""The papers' tables as pure functions: tidy run frame (aggregate.collect_runs) → `Table`.

Each `Table` holds a tidy frame (one row per run used, kind="run", and one per table cell,
kind="aggregate", with mean, std, ci_low, ci_high, n_seeds, p_vs_baseline) and a booktabs LaTeX
string. Rows and columns come from the runs present; order and names follow the papers (style.py).

"Overall" AUROC of a dataset (`overall`): for leave-one-subset-out datasets (iris), per seed the
mean over folds of the AUROC on the held-out subset; for face datasets, per run the mean over
generators of the per-generator AUROC (DD Table 2's Face cell is the mean of Table 4's columns);
else subset "all" of the fold-"all" runs. DD Table 2 prefers the held-out folds whenever they exist;
the SAGE tables use fold "all" runs when there are any. `summary.json` uses the same definitions.

Which tables a study writes (`build_all`): each paper's tables when the runs hold at least two of
that paper's methods (DD: Baseline + its losses; SAGE: Xent and the baselines), so no paper mirror
is built from a single method; the agreement table always.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from salience.io import write_text
from salience.reporting import style as S
from salience.reporting.cells import (
    constant_cells,
    gaze_note,
    generator_mean,
    method_notes,
    overall_note,
)
from salience.reporting.origin import caption_note
from salience.reporting.stats import paired_test, summarize

DESCRIPTORS = ["method", "backbone", "dataset", "task", "fold", "subset", "variant"]
TABLE_COLUMNS = ["table", "kind", "row", "row_label", "col", "col_label", *DESCRIPTORS, "metric"]
TABLE_COLUMNS += ["seed", "run_id", "value", "mean", "std", "ci_low", "ci_high", "n_seeds"]
TABLE_COLUMNS += ["baseline", "p_vs_baseline", "p_wilcoxon_vs_baseline"]
TABLE_COLUMNS += ["weights_origin"]  # per run row: the caption's and the mix check's source
DF, Opt = pd.DataFrame, str | None


@dataclass(frozen=True)
class Table:
    id: str
    data: pd.DataFrame
    latex: str


def empty_table(tid: str, caption: str, reason: str = "no runs for this table") -> Table:
    """Header-only CSV and a LaTeX stub saying `reason`: a table without cells never stops the
    pipeline."""
    tex = f"% {tid}: {reason}\n\\begin{{table}}[ht]\n\\centering\n"
    tex += f"\\caption{{{caption}}}\n\\label{{tab:{tid}}}\n"
    tex += f"{S.tex(reason[:1].upper() + reason[1:])}.\n\\end{{table}}\n"
    return Table(tid, pd.DataFrame(columns=TABLE_COLUMNS), tex)


def _cells(units, rows, cols, baseline_of, baseline_name, delta) -> dict[tuple[str, str], dict]:
    """Aggregate of each (row, col) cell over seeds; a seed with several units (one per fold)
    counts once, with their mean. `delta` = (a, b, d): column d = paired difference a − b."""
    seeds = units.groupby(["row", "col", "seed"])["value"].mean()
    vals_of = {k: g.droplevel([0, 1]).to_dict() for k, g in seeds.groupby(level=[0, 1])}
    out = {}
    for r, c in ((r, c) for r, _ in rows for c, _ in cols):
        test, base = None, ""
        if delta is not None and c == delta[2]:
            a, b = vals_of.get((r, delta[0]), {}), vals_of.get((r, delta[1]), {})
            vals = {s: a[s] - b[s] for s in sorted(set(a) & set(b))}
            test, base = paired_test(a, b), f"{delta[1]} (paired)"
            src = units[(units["row"] == r) & units["col"].isin(delta[:2])]
        else:
            vals, br = vals_of.get((r, c), {}), baseline_of(r) if baseline_of else None
            if br is not None and br != r and (br, c) in vals_of:
                test, base = paired_test(vals, vals_of[(br, c)]), baseline_name
            src = units[(units["row"] == r) & (units["col"] == c)]
        if not vals:
            continue
        sm = summarize(list(vals.values()))
        agg = {d: (src[d].iloc[0] if src[d].nunique() == 1 else "") for d in DESCRIPTORS}
        agg |= {"mean": sm.mean, "std": sm.std, "ci_low": sm.ci_low, "ci_high": sm.ci_high}
        agg |= {"n_seeds": sm.n, "baseline": base, "p_vs_baseline": test and test.p_ttest}
        if "weights_origin" in src:  # the cell's initialisation(s), as its run rows carry it
            agg["weights_origin"] = ", ".join(sorted(set(src["weights_origin"].astype(str))))
        out[(r, c)] = agg | {"p_wilcoxon_vs_baseline": test and test.p_wilcoxon, "row": r, "col": c}
    return out


def _build(
    tid: str,
    caption: str,
    units: pd.DataFrame,
    metric: str,
    stub: list[str],
    rows: list[tuple[str, tuple]],
    cols: list[tuple[str, str]],
    baseline_of: Callable[[str], str | None] | None = None,
    baseline_name: str = "",
    group_of: Callable[[str], str] = lambda r: "",
    delta: tuple | None = None,
    group_name: str = "",
) -> Table:
    """Tidy frame + LaTeX of a table whose cells are the (row, col) groups of `units` (columns
    row, col, seed, value and the DESCRIPTORS); bold = best mean per column within group_of(row)."""
    if units.empty:
        return empty_table(tid, caption)
    rlabel, clabel = {r: " / ".join(lab) for r, lab in rows}, dict(cols)
    cells = _cells(units, rows, cols, baseline_of, baseline_name, delta)
    # best (highest) mean per column within the row's group, compared at the printed precision
    shown = {k: round(a["mean"], 3) for k, a in cells.items()}
    best: dict[tuple[str, str], float] = {}
    for (r, c), m in shown.items():
        best[(group_of(r), c)] = max(best.get((group_of(r), c), m), m)
    contenders = Counter((group_of(r), c) for r, c in shown)
    flagged = constant_cells(units, delta)
    body = []
    for r, labels in rows:
        line = []
        for c, _ in cols:
            if (r, c) not in cells:
                line.append(S.DASH)
                continue
            a, g = cells[(r, c)], (group_of(r), c)
            txt = S.cell(a["mean"], a["std"], plain=delta is not None and c == delta[2])
            txt = rf"\textbf{{{txt}}}" if contenders[g] > 1 and shown[(r, c)] == best[g] else txt
            line.append(txt + (S.CONSTANT_MARK if (r, c) in flagged else ""))
        if any((r, c) in cells for c, _ in cols):
            body.append((labels, line))
    ns = sorted({a["n_seeds"] for a in cells.values()})
    n_txt = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}--{ns[-1]}"
    within = f" within each {group_name}" if group_name else ""
    cap = f"{caption}{S.tex(method_notes(units))} Mean $\\pm$ std over seeds ({n_txt}); "
    cap += f"best per column{within} in bold."
    cap += " " + caption_note(units)  # backbone initialisation of the runs (reporting/origin.py)
    cap += gaze_note(units)
    cap += S.CONSTANT_NOTE if any(k in cells for k in flagged) else ""
    cap += _no_baseline_note(rows, baseline_of, baseline_name)
    tex = S.render_latex(tid, cap, stub, [S.tex(lab) for _, lab in cols], body)
    meta = {"table": tid, "metric": metric}
    runs = units.assign(**meta, kind="run")
    aggs = pd.DataFrame(list(cells.values())).assign(**meta, kind="aggregate")
    data = pd.concat([runs, aggs], ignore_index=True)
    data = data.assign(row_label=data["row"].map(rlabel), col_label=data["col"].map(clabel))
    data = data.reindex(columns=TABLE_COLUMNS).astype({"seed": "Int64", "n_seeds": "Int64"})
    return Table(tid, data, tex)


def _no_baseline_note(rows, baseline_of, baseline_name: str) -> str:
    """Caption sentence when no row of the table is its paired-test baseline, so every p-value
    is blank for that reason (issue 14: said, never left blank silently)."""
    keys = {r for r, _ in rows}
    if baseline_of is None or not baseline_name or any(baseline_of(r) in keys for r in keys):
        return ""
    return f" No p-values: the baseline {S.tex(baseline_name)} has no runs in this table."


# ---- selection helpers ---------------------------------------------------------------------------
def _select(runs: pd.DataFrame, metric: str, methods, variant: str | None = "base") -> pd.DataFrame:
    d = runs if variant is None else runs[runs["variant"] == variant]
    d = d if methods is None else d[d["method"].isin(list(methods))]
    return d.assign(value=d[metric]).dropna(subset=["value"])


def pick_backbone(d: pd.DataFrame, preferred: str | None) -> str | None:
    """`preferred` when present in `d`, else the first present in the papers' order."""
    present = S.ordered(d["backbone"], S.BACKBONE_ORDER)
    return preferred if preferred in present else (present[0] if present else None)


def _one_backbone(
    d: pd.DataFrame, backbone: str | None, preferred: str
) -> tuple[pd.DataFrame, str]:
    bb = backbone or pick_backbone(d, preferred)
    return d[d["backbone"] == bb], S.tex(S.backbone_name(bb) if bb else "no backbone")


def overall(d: pd.DataFrame, prefer_loo: bool) -> pd.DataFrame:
    """Rows giving each dataset's overall AUROC, one per run (see the module docstring);
    `d` needs a `value` column (the metric)."""
    parts = []
    for _, g in d.groupby("dataset"):
        loo = g[(g["fold"] != "all") & (g["subset"] == g["fold"])]
        if (g["task"] == "face").all():
            full = generator_mean(g)
        else:
            full = g[(g["fold"] == "all") & (g["subset"] == "all")]
        parts.append((loo if len(loo) else full) if prefer_loo else (full if len(full) else loo))
    return pd.concat(parts, ignore_index=True) if parts else d.iloc[0:0]


def per_subset(d: pd.DataFrame) -> pd.DataFrame:
    """Per-subset rows: held-out subset of each fold (DD Table 3), else fold "all" subsets."""
    loo = d[(d["fold"] != "all") & (d["subset"] == d["fold"])]
    return loo if len(loo) else d[(d["fold"] == "all") & (d["subset"] != "all")]


def task_cols(d: pd.DataFrame, order: list[str]) -> list[tuple[str, str]]:
    """One column per dataset, in the paper's task order, labelled by task (+ dataset if shared)."""
    pairs = d[["dataset", "task"]].drop_duplicates()
    shared = pairs["task"].value_counts()
    rank = {t: i for i, t in enumerate(order)}
    ranked = sorted(pairs.itertuples(index=False), key=lambda p: (rank.get(p[1], len(rank)), p[0]))
    return [
        (ds, S.TASK_NAMES.get(t, t) + (f" ({ds})" if shared[t] > 1 else "")) for ds, t in ranked
    ]


def _keyed(u: pd.DataFrame, fields: list[str], orders: list[list[str]], labelers: list) -> tuple:
    """Row key "a/b" from `fields`; rows in the given orders (unknown values last), with labels."""
    if u.empty:
        return u.assign(row=pd.Series(dtype=str)), []
    u = u.assign(row=u[fields].astype(str).agg("/".join, axis=1))
    pos = [{v: i for i, v in enumerate(S.ordered(u[f], o))} for f, o in zip(fields, orders)]
    keys = sorted(
        u[["row", *fields]].drop_duplicates().itertuples(index=False),
        key=lambda k: tuple(p[v] for p, v in zip(pos, k[1:])),
    )
    return u, [(k[0], tuple(fn(v) for fn, v in zip(labelers, k[1:]))) for k in keys]


def _by_task(tid, cap, u, metric, order, baseline, base_name=None, dd=False, stub="Method"):
    """Rows = methods (or the ablation values already in `row`), one column per task."""
    if "row" in u:
        rows = [(r, (r,)) for r in sorted(u["row"].unique(), key=float)]
    else:
        u, rows = _keyed(u, ["method"], [S.ALL_METHODS], [lambda m: S.method_name(m, dd)])
    cols, base_of = task_cols(u, order), lambda r: baseline
    return _build(
        tid,
        cap + overall_note(u),
        u.assign(col=u["dataset"]),
        metric,
        [stub],
        rows,
        cols,
        base_of,
        base_name or baseline,
    )


# ---- DD Tables 2–4 -------------------------------------------------------------------------------
def dd_t2(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 2: overall AUROC, rows Baseline (CYBORG)/Difference/Per-class/Contrast × tasks."""
    d, bname = _one_backbone(_select(runs, metric, S.DD_METHODS), backbone, "densenet121")
    cap = f"Mirrors DD Table 2: overall {S.metric_tex(metric)} per task ({bname})."
    u = overall(d, prefer_loo=True)
    return _by_task("dd_t2", cap, u, metric, S.DD_TASK_ORDER, baseline, dd=True)


def _dd_subsets(tid: str, task: str, runs, metric, baseline, backbone) -> Table:
    d = _select(runs[runs["task"] == task], metric, S.DD_METHODS)
    d, bname = _one_backbone(d, backbone, "densenet121")
    u, rows = _keyed(per_subset(d), ["method"], [S.DD_METHODS], [lambda m: S.method_name(m, True)])
    u = u.assign(col=u["dataset"] + ":" + u["subset"])
    keys = u[["col", "dataset", "subset"]].drop_duplicates()
    subs, multi = S.ordered_subsets(keys["subset"]), keys["dataset"].nunique() > 1
    keys = sorted(keys.itertuples(index=False), key=lambda k: (k[1], subs.index(k[2])))
    cols = [(c, (f"{ds}: " if multi else "") + S.subset_name(s)) for c, ds, s in keys]
    what = "held-out attack type" if task == "iris" else "generator"
    cap = f"Mirrors DD Table {tid[-1]}: {S.metric_tex(metric)} per {what} ({bname})."
    return _build(tid, cap, u, metric, ["Method"], rows, cols, lambda r: baseline, baseline)


def dd_t3(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 3: iris PAD, one column per held-out attack type (AUROC on subset == fold)."""
    return _dd_subsets("dd_t3", "iris", runs, metric, baseline, backbone)


def dd_t4(runs: DF, metric: str = "auroc", baseline: str = "cyborg", backbone: Opt = None) -> Table:
    """DD Table 4: synthetic faces, one column per generator (same real images vs that generator)."""
    return _dd_subsets("dd_t4", "face", runs, metric, baseline, backbone)


# ---- SAGE Tables 1–5 and CAM agreement -----------------------------------------------------------
def sage_t1(runs: DF, metric: str = "auroc", baseline: str = "xent", backbone: Opt = None) -> Table:
    """SAGE Table 1: 8 methods × Iris/Face/Chest, one backbone (ResNet50 in the paper)."""
    d, bname = _one_backbone(_select(runs, metric, S.SAGE_METHODS), backbone, "resnet50")
    cap = f"Mirrors SAGE Table 1: {S.metric_tex(metric)} per task ({bname})."
    u = overall(d, prefer_loo=False)
    return _by_task("sage_t1", cap, u, metric, S.SAGE_TASK_ORDER, baseline)


def _second(row: str) -> str:
    return row.split("/", 1)[1]


def _by_backbone(tid: str, cap: str, d: DF, metric: str, baseline: str) -> Table:
    """Rows = method × backbone (SAGE Table 2 layout); bold and baseline within each backbone."""
    fields, orders = ["method", "backbone"], [S.ALL_METHODS, S.BACKBONE_ORDER]
    u, rows = _keyed(overall(d, False), fields, orders, [S.method_name, S.backbone_name])
    u, cols = u.assign(col=u["dataset"]), task_cols(u, S.SAGE_TASK_ORDER)
    cap += overall_note(u)
    base_of = lambda r: f"{baseline}/{_second(r)}"  # noqa: E731
    stub = ["Method", "Backbone"]
    return _build(
        tid, cap, u, metric, stub, rows, cols, base_of, baseline, _second, None, "backbone"
    )


def _in_sage_t2(d: DF) -> pd.Series:
    """Rows SAGE Table 2 prints: its methods, without the (method, backbone) pairs it omits."""
    pair = pd.Series(list(zip(d["method"], d["backbone"])), index=d.index)
    return d["method"].isin(S.SAGE_T2_METHODS) & ~pair.isin(S.SAGE_T2_ABSENT)


def sage_t2(runs: DF, metric: str = "auroc", baseline: str = "xent") -> Table:
    """SAGE Table 2: methods × backbones × tasks, only the rows the paper has (no GG-CAM or
    Gaze-GNN, no CYBORG on Swin-T; those go to `sage_t2_extended`); bold = best per backbone."""
    cap = f"Mirrors SAGE Table 2: {S.metric_tex(metric)} per backbone and task."
    d = _select(runs, metric, S.SAGE_METHODS)
    return _by_backbone("sage_t2", cap, d[_in_sage_t2(d)], metric, baseline)


def sage_t2_extended(runs: DF, metric: str = "auroc", baseline: str = "xent") -> Table:
    """The SAGE method × backbone runs beyond SAGE Table 2's rows (e.g. GG-CAM and Gaze-GNN on
    every backbone, CYBORG on Swin-T), with the Xent rows of their backbones as the reference."""
    d = _select(runs, metric, S.SAGE_METHODS)
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
    d = _select(runs, "cam_agreement", None)
    if d.empty and not runs.empty:  # runs, but none scored against human maps
        return empty_table("agreement", cap, NO_TEST_MAPS)
    return _by_backbone("agreement", cap, d, "cam_agreement", baseline)


NO_TEST_MAPS = "no test maps: agreement needs annotated test images (and models with a CAM)"


def sage_t3(runs: DF, metric: str = "auroc", backbone: Opt = None) -> Table:
    """SAGE Table 3 (sanity check): human maps h vs flipped maps 1 − h, and their difference."""
    methods = _select(runs, metric, None, "flipped")["method"].unique()
    d = _select(runs[runs["variant"].isin(["base", "flipped"])], metric, methods, None)
    d, bname = _one_backbone(d, backbone, "resnet50")
    u = overall(d, prefer_loo=False)
    tcols = task_cols(u, S.SAGE_TASK_ORDER)
    orders = [S.ALL_METHODS, [c for c, _ in tcols]]
    u, rows = _keyed(u, ["method", "dataset"], orders, [S.method_name, dict(tcols).get])
    u = u.assign(col=u["variant"].map({"base": "human", "flipped": "flipped"}))
    cols = [
        ("human", "Saliency maps h"),
        ("flipped", "Non-salient maps 1-h"),
        ("delta", "Difference"),
    ]
    cap = f"Mirrors SAGE Table 3 (sanity check): {S.metric_tex(metric)} with human maps $h$, flipped maps "
    cap += f"$1-h$, and their paired difference ({bname}).{overall_note(u)}"
    stub, delta = ["Method", "Dataset"], ("human", "flipped", "delta")
    return _build("sage_t3", cap, u, metric, stub, rows, cols, None, "", _second, delta, "dataset")


def _ablation(tid, prefix, symbol, default, runs, metric, method, backbone) -> Table:
    d = _select(runs[runs["variant"].str.startswith(prefix + "-")], metric, [method], None)
    d, bname = _one_backbone(d, backbone, "resnet50")
    value = pd.to_numeric(d["variant"].str.split("-", n=1).str[1], errors="coerce")
    u = overall(d.assign(param=value).dropna(subset=["param"]), prefer_loo=False)
    u, base = u.assign(row=u["param"].map(lambda v: f"{v:g}")), f"{default:g}"
    cap = f"Mirrors SAGE Table {tid[-1]}: ablation of {symbol} for "
    cap += f"{S.tex(S.method_name(method))}, {S.metric_tex(metric)} ({bname}); p-values vs {symbol} = {base}."
    return _by_task(tid, cap, u, metric, S.SAGE_TASK_ORDER, base, f"{prefix}-{base}", stub=symbol)


def sage_t4(
    runs: DF, metric: str = "auroc", method: str = "sage", backbone: Opt = None, default: float = 2
) -> Table:
    """SAGE Table 4: temperature τ (variants tau-<v>); paired tests against the paper's τ = 2."""
    return _ablation("sage_t4", "tau", r"$\tau$", default, runs, metric, method, backbone)


def sage_t5(
    runs: DF, metric: str = "auroc", method: str = "sage", backbone: Opt = None, default: float = 10
) -> Table:
    """SAGE Table 5: Gaussian blur σ (variants sigma-<v>); paired tests against the paper's σ = 10."""
    return _ablation("sage_t5", "sigma", r"$\sigma$", default, runs, metric, method, backbone)


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
    included, then the agreement table; baselines of the paired tests per paper."""
    papers = papers_of(runs) if papers is None else papers
    out = []
    if "dd" in papers:
        out += [f(runs, metric, dd_base) for f in (dd_t2, dd_t3, dd_t4)]
    if "sage" in papers:
        out += [sage_t1(runs, metric, sage_base), sage_t2(runs, metric, sage_base)]
        out += [sage_t2_extended(runs, metric, sage_base)]
        out += [sage_t3(runs, metric), sage_t4(runs, metric), sage_t5(runs, metric)]
    return [*out, agreement(runs, sage_base)]


def write_table(table: Table, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """<out_dir>/<id>.csv and <id>.tex, each written atomically."""
    out = Path(out_dir)
    csv, tex = out / f"{table.id}.csv", out / f"{table.id}.tex"
    write_text(csv, table.data.to_csv(index=False))
    write_text(tex, table.latex)
    return csv, tex
