"""The `false_class` table of multi-class studies (issue 12): Difference, Per-class and Contrast
Salience on K > 2 tasks under each choice of the false-class CAM (docs/decisions.md,
"Multi-class Difference, Per-class and Contrast Salience").

Rows are the `false_class` choices (strongest, mean, pairwise); columns the DD methods, per
multi-class dataset when a study has several; cells the macro one-vs-rest AUROC (metrics.json
`auroc.all`), mean ± std over seeds, with a paired test against `strongest` (the default) in the
same column. A run enters when its variant is the base variant or the sweep variant of its own
`false_class` value (`<label>-<choice>`), so runs that also change another setting stay out.
"""

from __future__ import annotations

import pandas as pd

from salience.reporting import style as S
from salience.reporting.aggregate import num_classes
from salience.reporting.cells import overall_note
from salience.reporting.grid import Comparison, Layout, Table, build
from salience.reporting.selection import one_backbone, overall, select

TABLE_ID = "false_class"
#: the switch's choices in the order of docs/decisions.md (the first is the default)
CHOICES = ["strongest", "mean", "pairwise"]
DEFAULT = CHOICES[0]


def false_class_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows of K > 2 runs of methods with a `false_class` setting, base or false_class sweep."""
    if "false_class" not in runs.columns:
        return runs.iloc[0:0]
    d = runs[(num_classes(runs) > 2) & runs["false_class"].isin(CHOICES)]
    keep = [v == "base" or v.endswith(f"-{fc}") for v, fc in zip(d["variant"], d["false_class"])]
    return d[pd.Series(keep, index=d.index, dtype=bool)]


def false_class_tables(runs: pd.DataFrame, metric: str = "auroc") -> list[Table]:
    """[the false_class table] when the runs hold K > 2 runs of the DD methods, else []."""
    d = select(false_class_runs(runs), metric, None, variant=None)
    if d.empty:
        return []
    d, bname = one_backbone(d, None, "resnet50")
    u = overall(d, prefer_loo=False).assign(row=lambda x: x["false_class"])
    several = u["dataset"].nunique() > 1
    col = u["method"] + ("/" + u["dataset"] if several else "")
    u = u.assign(col=col)
    order = S.ordered(u["method"], S.DD_METHODS)
    cols = [
        (f"{m}/{ds}" if several else m, S.method_name(m) + (f" ({ds})" if several else ""))
        for m in order
        for ds in sorted(u.loc[u["method"] == m, "dataset"].unique())
    ]
    rows = [(c, (c,)) for c in CHOICES if c in set(u["row"])]
    cap = (
        f"Multi-class DD methods under each false-class CAM choice (issue 12, docs/decisions.md): "
        f"{S.metric_tex(metric)} (macro one-vs-rest, {bname}), mean $\\pm$ std over seeds; "
        f"p-values: paired t-test over seeds against \\texttt{{{DEFAULT}}} (the default) in the "
        f"same column."
    )
    layout = Layout(TABLE_ID, cap + overall_note(u), metric, ["False class"], rows, cols)
    return [build(layout, u, Comparison(lambda r: DEFAULT, DEFAULT))]
