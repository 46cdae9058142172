"""One comparison of every method a study ran (issue 14): the `overview` table.

Rows = every method of the base variant (× backbone when the study has several), including the
methods no paper table lists; columns = the tasks with the papers' cell definitions
(`selection.overall`: held-out iris mean over leave-one-out folds, face mean over generators, chest
pooled); cells = mean ± std over seeds, n, 95 % CI and the paired test against a baseline the user
picks (`tables --baseline`, config `report.baseline`, default `xent`).
"""

from __future__ import annotations

import pandas as pd

from salience.errors import SalienceError
from salience.reporting import style as S
from salience.reporting.aggregate import multiclass_datasets
from salience.reporting.cells import overall_note
from salience.reporting.grid import Comparison, Layout, Table, build, empty_table
from salience.reporting.selection import keyed, overall, select, task_cols

OVERVIEW_ID = "overview"


def methods_run(runs: pd.DataFrame) -> list[str]:
    """Methods present in the base variant of `runs`, in the papers' order (unknown ones last)."""
    return S.ordered(runs.loc[runs["variant"] == "base", "method"], S.ALL_METHODS)


def check_baseline(
    runs: pd.DataFrame, baseline: str, flag: str = "--baseline", where: str = "this study"
) -> None:
    """One-line SalienceError when `baseline` has no base-variant run among `runs` (the rows of
    `where`): its p-values would all be blank. The message names the methods that were run."""
    ran = methods_run(runs)
    if baseline not in ran:
        key = " (config report.baseline)" if flag == "--baseline" else ""
        raise SalienceError(
            f"baseline {baseline!r} ({flag}{key}) has no runs in {where}; methods run there: "
            f"{', '.join(ran) or 'none'}; pick one of them with `tables {flag} <method>`"
        )


DEFAULT_BASELINE = "xent"


def macro_note(runs: pd.DataFrame) -> str:
    """Caption sentence for the multi-class tasks among `runs` (K > 2, issue 12): their cells are
    the macro one-vs-rest AUROC (metrics.json `auroc.all`); empty when every task is binary."""
    names = multiclass_datasets(runs)
    if not names:
        return ""
    return (
        f" Multi-class tasks ({S.tex(', '.join(names))}): macro one-vs-rest AUROC, the unweighted "
        "mean over classes of each class's AUROC against the rest."
    )


def overview(runs: pd.DataFrame, metric: str = "auroc", baseline: str | None = None) -> Table:
    """Every method run × every task; paired tests vs `baseline` within each backbone.

    Cells follow DD Table 2 / SAGE Table 1 (see `selection.overall`); rows are `method` or
    `method/backbone` (several backbones). An explicit `baseline` that was not run raises a
    one-line SalienceError naming the methods run; `None` means xent, or (xent not run) the first
    method run in the papers' order, which the caption then says."""
    ran, note = methods_run(runs), ""
    if not ran:
        return empty_table(OVERVIEW_ID, "Every method run: no runs of the base variant.")
    if baseline is None:
        baseline = DEFAULT_BASELINE if DEFAULT_BASELINE in ran or not ran else ran[0]
        if baseline != DEFAULT_BASELINE:
            note = f" ({S.tex(S.method_name(DEFAULT_BASELINE))} was not run)"
    check_baseline(runs, baseline)
    d = select(runs, metric, None)
    u = overall(d, prefer_loo=True)
    multi = u["backbone"].nunique() > 1
    if multi:
        fields, orders = ["method", "backbone"], [S.ALL_METHODS, S.BACKBONE_ORDER]
        u, rows = keyed(u, fields, orders, [S.method_name, S.backbone_name])
        base_of = lambda r: f"{baseline}/{r.split('/', 1)[1]}"  # noqa: E731
        group_of, stub = (lambda r: r.split("/", 1)[1]), ["Method", "Backbone"]
    else:
        u, rows = keyed(u, ["method"], [S.ALL_METHODS], [S.method_name])
        base_of, group_of, stub = (lambda r: baseline), (lambda r: ""), ["Method"]
    bb = "" if multi or u.empty else f" ({S.tex(S.backbone_name(u['backbone'].iloc[0]))})"
    cap = f"Every method run, {S.metric_tex(metric)} per task{bb}, base variant; "
    cap += f"p-values: paired t-test over seeds against {S.tex(S.method_name(baseline))}{note} "
    cap += "(tidy CSV: n, 95\\% CI, p)."
    cap += overall_note(u) if not u.empty else ""
    cap += macro_note(runs[runs["variant"] == "base"])
    cols = task_cols(u, S.SAGE_TASK_ORDER)
    group = "backbone" if multi else ""
    layout = Layout(OVERVIEW_ID, cap, metric, stub, rows, cols)
    return build(layout, u.assign(col=u["dataset"]), Comparison(base_of, baseline, group_of, group))
