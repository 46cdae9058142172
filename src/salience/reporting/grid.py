"""A results table as a grid of cells: each (row, col) cell aggregates its runs' values over seeds
(mean, std, 95 % CI, paired test against a baseline row), rendered as a tidy frame and booktabs
LaTeX (`build`). The papers' tables (reporting/tables.py) and the overview (reporting/overview.py)
differ only in the `Layout` and `Comparison` they pass.

The tidy frame has one row per run used (kind="run") and one per cell (kind="aggregate", with
mean, std, ci_low, ci_high, n_seeds, p_vs_baseline); columns TABLE_COLUMNS.
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
from salience.reporting.cells import constant_cells, gaze_note, method_notes
from salience.reporting.origin import caption_note
from salience.reporting.stats import paired_test, summarize

DESCRIPTORS = ["method", "backbone", "dataset", "task", "fold", "subset", "variant"]
TABLE_COLUMNS = ["table", "kind", "row", "row_label", "col", "col_label", *DESCRIPTORS, "metric"]
TABLE_COLUMNS += ["seed", "run_id", "value", "mean", "std", "ci_low", "ci_high", "n_seeds"]
TABLE_COLUMNS += ["baseline", "p_vs_baseline", "p_wilcoxon_vs_baseline"]
TABLE_COLUMNS += ["weights_origin"]  # per run row: the caption's and the mix check's source

Cells = dict[tuple[str, str], dict]  # (row, col) → aggregate record of the cell


@dataclass(frozen=True)
class Table:
    id: str
    data: pd.DataFrame
    latex: str


@dataclass(frozen=True)
class Layout:
    """What a table shows: `tid` (file name and LaTeX label), the caption's own text (the notes
    on methods, seeds, initialisation and baselines are appended), the metric, the stub column
    headers, the rows as (key, labels: one per stub column) and the columns as (key, label)."""

    tid: str
    caption: str
    metric: str
    stub: list[str]
    rows: list[tuple[str, tuple]]
    cols: list[tuple[str, str]]


def _no_group(row: str) -> str:
    return ""


@dataclass(frozen=True)
class Comparison:
    """How a table's cells are compared. `baseline_of(row)`: the row each row's paired test is
    against (None: no tests), named `baseline_name` in the CSV and caption; bold = best mean per
    column within `group_of(row)` (named `group_name` in the caption); `delta` = (a, b, d):
    column d holds the paired difference of columns a − b."""

    baseline_of: Callable[[str], str | None] | None = None
    baseline_name: str = ""
    group_of: Callable[[str], str] = _no_group
    group_name: str = ""
    delta: tuple[str, str, str] | None = None


def empty_table(tid: str, caption: str, reason: str = "no runs for this table") -> Table:
    """Header-only CSV and a LaTeX stub saying `reason`: a table without cells never stops the
    pipeline."""
    tex = f"% {tid}: {reason}\n\\begin{{table}}[ht]\n\\centering\n"
    tex += f"\\caption{{{caption}}}\n\\label{{tab:{tid}}}\n"
    tex += f"{S.tex(reason[:1].upper() + reason[1:])}.\n\\end{{table}}\n"
    return Table(tid, pd.DataFrame(columns=TABLE_COLUMNS), tex)


def build(layout: Layout, units: pd.DataFrame, compare: Comparison = Comparison()) -> Table:
    """Tidy frame + LaTeX of a table whose cells are the (row, col) groups of `units` (columns
    row, col, seed, value and the DESCRIPTORS); empty units give `empty_table`."""
    if units.empty:
        return empty_table(layout.tid, layout.caption)
    cells = _cells(units, layout, compare)
    flagged = constant_cells(units, compare.delta)
    body = _body(layout, compare, cells, flagged)
    cap = _caption(layout, compare, units, cells, flagged)
    heads = [S.tex(lab) for _, lab in layout.cols]
    return Table(
        layout.tid,
        _frame(layout, units, cells),
        S.render_latex(layout.tid, cap, layout.stub, heads, body),
    )


def _cells(units: pd.DataFrame, layout: Layout, compare: Comparison) -> Cells:
    """Aggregate of each (row, col) cell over seeds; a seed with several units (one per fold)
    counts once, with their mean."""
    baseline_of, delta = compare.baseline_of, compare.delta
    seeds = units.groupby(["row", "col", "seed"])["value"].mean()
    vals_of = {k: g.droplevel([0, 1]).to_dict() for k, g in seeds.groupby(level=[0, 1])}
    out = {}
    for r, c in ((r, c) for r, _ in layout.rows for c, _ in layout.cols):
        test, base = None, ""
        if delta is not None and c == delta[2]:
            a, b = vals_of.get((r, delta[0]), {}), vals_of.get((r, delta[1]), {})
            vals = {s: a[s] - b[s] for s in sorted(set(a) & set(b))}
            test, base = paired_test(a, b), f"{delta[1]} (paired)"
            src = units[(units["row"] == r) & units["col"].isin(delta[:2])]
        else:
            vals, br = vals_of.get((r, c), {}), baseline_of(r) if baseline_of else None
            if br is not None and br != r and (br, c) in vals_of:
                test, base = paired_test(vals, vals_of[(br, c)]), compare.baseline_name
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


def _bold(cells: Cells, group_of: Callable[[str], str]) -> set[tuple[str, str]]:
    """Cells with the best (highest) mean of their column within the row's group, compared at
    the printed precision; none in a group with a single cell."""
    shown = {k: round(a["mean"], 3) for k, a in cells.items()}
    best: dict[tuple[str, str], float] = {}
    for (r, c), m in shown.items():
        best[(group_of(r), c)] = max(best.get((group_of(r), c), m), m)
    contenders = Counter((group_of(r), c) for r, c in shown)
    return {
        (r, c)
        for (r, c), m in shown.items()
        if contenders[(group_of(r), c)] > 1 and m == best[(group_of(r), c)]
    }


def _body(
    layout: Layout, compare: Comparison, cells: Cells, flagged: set
) -> list[tuple[tuple, list[str]]]:
    """LaTeX body: (row labels, cell texts) of each row with at least one cell."""
    bold, delta = _bold(cells, compare.group_of), compare.delta
    body = []
    for r, labels in layout.rows:
        line = []
        for c, _ in layout.cols:
            if (r, c) not in cells:
                line.append(S.DASH)
                continue
            a = cells[(r, c)]
            txt = S.cell(a["mean"], a["std"], plain=delta is not None and c == delta[2])
            txt = rf"\textbf{{{txt}}}" if (r, c) in bold else txt
            line.append(txt + (S.CONSTANT_MARK if (r, c) in flagged else ""))
        if any((r, c) in cells for c, _ in layout.cols):
            body.append((labels, line))
    return body


def _caption(
    layout: Layout, compare: Comparison, units: pd.DataFrame, cells: Cells, flagged: set
) -> str:
    """The caption: the layout's text, then the notes on methods, seeds, bold, initialisation,
    gaze maps, constant cells and a missing baseline."""
    ns = sorted({a["n_seeds"] for a in cells.values()})
    n_txt = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}--{ns[-1]}"
    within = f" within each {compare.group_name}" if compare.group_name else ""
    cap = f"{layout.caption}{S.tex(method_notes(units))} Mean $\\pm$ std over seeds ({n_txt}); "
    cap += f"best per column{within} in bold."
    cap += " " + caption_note(units)  # backbone initialisation of the runs (reporting/origin.py)
    cap += gaze_note(units)
    cap += S.CONSTANT_NOTE if any(k in cells for k in flagged) else ""
    return cap + _no_baseline_note(layout.rows, compare)


def _frame(layout: Layout, units: pd.DataFrame, cells: Cells) -> pd.DataFrame:
    """The tidy frame: the runs used, then one aggregate row per cell (TABLE_COLUMNS)."""
    rlabel, clabel = {r: " / ".join(lab) for r, lab in layout.rows}, dict(layout.cols)
    meta = {"table": layout.tid, "metric": layout.metric}
    runs = units.assign(**meta, kind="run")
    aggs = pd.DataFrame(list(cells.values())).assign(**meta, kind="aggregate")
    data = pd.concat([runs, aggs], ignore_index=True)
    data = data.assign(row_label=data["row"].map(rlabel), col_label=data["col"].map(clabel))
    return data.reindex(columns=TABLE_COLUMNS).astype({"seed": "Int64", "n_seeds": "Int64"})


def _no_baseline_note(rows: list[tuple[str, tuple]], compare: Comparison) -> str:
    """Caption sentence when no row of the table is its paired-test baseline, so every p-value
    is blank for that reason (issue 14: said, never left blank silently)."""
    keys = {r for r, _ in rows}
    baseline_of, baseline_name = compare.baseline_of, compare.baseline_name
    if baseline_of is None or not baseline_name or any(baseline_of(r) in keys for r in keys):
        return ""
    return f" No p-values: the baseline {S.tex(baseline_name)} has no runs in this table."


def write_table(table: Table, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """<out_dir>/<id>.csv and <id>.tex, each written atomically."""
    out = Path(out_dir)
    csv, tex = out / f"{table.id}.csv", out / f"{table.id}.tex"
    write_text(csv, table.data.to_csv(index=False))
    write_text(tex, table.latex)
    return csv, tex
