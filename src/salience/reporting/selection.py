"""Which runs and values a table's cells use: the metric of the chosen variant and methods
(`select`), one backbone (`one_backbone`), a dataset's "overall" AUROC (`overall`), the
per-subset rows (`per_subset`), and the rows and columns in the papers' order (`keyed`,
`task_cols`).

"Overall" AUROC of a dataset (`overall`): for leave-one-subset-out datasets (iris), per seed the
mean over folds of the AUROC on the held-out subset; for face datasets, per run the mean over
generators of the per-generator AUROC (DD Table 2's Face cell is the mean of Table 4's columns);
else subset "all" of the fold-"all" runs. DD Table 2 prefers the held-out folds whenever they exist;
the SAGE tables use fold "all" runs when there are any. `summary.json` uses the same definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from salience.reporting import style as S
from salience.reporting.cells import generator_mean


def select(
    runs: pd.DataFrame, metric: str, methods: Iterable[str] | None, variant: str | None = "base"
) -> pd.DataFrame:
    """Runs of `variant` (None: any) and `methods` (None: all) with a `value` column = `metric`,
    rows without a value dropped."""
    d = runs if variant is None else runs[runs["variant"] == variant]
    d = d if methods is None else d[d["method"].isin(list(methods))]
    return d.assign(value=d[metric]).dropna(subset=["value"])


def pick_backbone(d: pd.DataFrame, preferred: str | None) -> str | None:
    """`preferred` when present in `d`, else the first present in the papers' order."""
    present = S.ordered(d["backbone"], S.BACKBONE_ORDER)
    return preferred if preferred in present else (present[0] if present else None)


def one_backbone(d: pd.DataFrame, backbone: str | None, preferred: str) -> tuple[pd.DataFrame, str]:
    """The rows of `backbone` (None: `pick_backbone(d, preferred)`) and its name for captions."""
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


def keyed(
    u: pd.DataFrame,
    fields: list[str],
    orders: list[list[str]],
    labelers: list[Callable[[str], str | None]],
) -> tuple[pd.DataFrame, list[tuple[str, tuple]]]:
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
