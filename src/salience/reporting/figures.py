"""Figures as pure functions: tidy frames in, one PNG out (atomic), path returned.

Figures are drawn on `matplotlib.figure.Figure` with an explicit Agg canvas (no pyplot, no global
state); rcParams come from `style.RC` through `rc_context`. A figure without data still gets
written, with a "no runs" note, so the pipeline never stops on a partial grid.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from salience.reporting import style as S
from salience.reporting.tables import overall

FIGURE_FILES = {
    "roc": "roc.png",
    "seeds": "seed_auroc.png",
    "tau": "ablation_tau.png",
    "sigma": "ablation_sigma.png",
}


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.2, 2.9)):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _empty(path: str | os.PathLike, what: str) -> Path:
    fig, (ax,) = _grid(1)
    ax.text(0.5, 0.5, f"no runs for {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return S.save_figure(fig, path)


def _palette(methods) -> dict[str, tuple]:
    ms = S.ordered(methods, S.ALL_METHODS)
    return dict(zip(ms, sns.color_palette("tab10", max(len(ms), 1))))


def plot_roc(roc: pd.DataFrame, path: str | os.PathLike) -> Path:
    """ROC curves (DD/SAGE report AUROC): one panel per dataset × subset, one line per method
    (its first backbone in the papers' order, lowest seed). Leave-one-out datasets show, per
    fold, the held-out subset; other datasets show "all" and each subset."""
    with mpl.rc_context(S.RC):
        d = roc[roc["variant"] == "base"]
        loo = d["dataset"].isin(set(d.loc[d["fold"] != "all", "dataset"]))
        d = d[(~loo & (d["fold"] == "all")) | (loo & (d["subset"] == d["fold"]))]
        if d.empty:
            return _empty(path, "ROC curves")
        panels = []
        for ds in sorted(d["dataset"].unique()):
            subs = d.loc[d["dataset"] == ds, "subset"].unique()
            panels += [
                (ds, s) for s in ["all"] * ("all" in subs) + S.ordered_subsets(set(subs) - {"all"})
            ]
        fig, axes = _grid(len(panels))
        colors = _palette(d["method"])
        for ax, (ds, sub) in zip(axes, panels):
            p = d[(d["dataset"] == ds) & (d["subset"] == sub)]
            for m in S.ordered(p["method"], S.ALL_METHODS):
                g = p[p["method"] == m]
                g = g[g["backbone"] == S.ordered(g["backbone"], S.BACKBONE_ORDER)[0]]
                g = g[g["seed"] == g["seed"].min()]
                label = f"{S.method_name(m)} (s{g['seed'].iloc[0]})"
                ax.plot(g["fpr"], g["tpr"], color=colors[m], lw=1.2, label=label)
            ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="FPR", ylabel="TPR")
            ax.set_title(f"{ds}: {S.subset_name(sub) if sub != 'all' else 'all'}")
            ax.legend(loc="lower right", fontsize=6)
        return S.save_figure(fig, path)


def plot_seed_distributions(
    runs: pd.DataFrame, path: str | os.PathLike, metric: str = "auroc"
) -> Path:
    """Per-seed overall AUROC per method (points, mean ± std bar), one panel per dataset, base
    variant. Leave-one-out datasets: one point per seed = mean over folds (as in the tables)."""
    with mpl.rc_context(S.RC):
        d = overall(runs[runs["variant"] == "base"], prefer_loo=False)
        if d.empty:
            return _empty(path, "seed distributions")
        keys = ["dataset", "method", "backbone", "seed"]
        d = d.groupby(keys, as_index=False)[metric].mean()
        d["Method"] = d["method"].map(S.method_name)
        d["Backbone"] = d["backbone"].map(S.backbone_name)
        datasets = sorted(d["dataset"].unique())
        fig, axes = _grid(len(datasets), ncols=3, size=(4.2, 3.2))
        hue = "Backbone" if d["backbone"].nunique() > 1 else None
        for ax, ds in zip(axes, datasets):
            p = d[d["dataset"] == ds]
            order = [S.method_name(m) for m in S.ordered(p["method"], S.ALL_METHODS)]
            kw = {"data": p, "x": "Method", "y": metric, "hue": hue, "order": order, "ax": ax}
            sns.stripplot(**kw, size=3, alpha=0.7, dodge=hue is not None, legend=False)
            # mean ± std over seeds, as the papers' tables report
            sns.pointplot(
                **kw,
                errorbar="sd",
                dodge=0.4 if hue else False,
                linestyle="none",
                marker="_",
                markersize=12,
                capsize=0.2,
                color=None if hue else "k",
            )
            ax.set_title(ds)
            ax.set(xlabel="", ylabel=S.METRIC_LABEL.get(metric, metric))
            ax.tick_params(axis="x", labelrotation=45)
        return S.save_figure(fig, path)


def plot_ablation(
    runs: pd.DataFrame,
    path: str | os.PathLike,
    prefix: str = "tau",
    method: str = "sage",
    metric: str = "auroc",
) -> Path:
    """SAGE Tables 4–5 as curves: mean ± std over seeds vs the swept value, one line per dataset."""
    with mpl.rc_context(S.RC):
        d = runs[(runs["method"] == method) & runs["variant"].str.startswith(prefix + "-")]
        d = d.assign(param=pd.to_numeric(d["variant"].str.split("-", n=1).str[1], errors="coerce"))
        d = overall(d.dropna(subset=["param"]), prefer_loo=False)
        if d.empty:
            return _empty(path, f"the {prefix} ablation")
        per_seed = d.groupby(["dataset", "backbone", "param", "seed"], as_index=False)[
            metric
        ].mean()
        agg = per_seed.groupby(["dataset", "backbone", "param"])[metric].agg(["mean", "std"])
        fig, (ax,) = _grid(1, size=(4.5, 3.2))
        for (ds, bb), g in agg.reset_index().groupby(["dataset", "backbone"]):
            ax.errorbar(
                g["param"],
                g["mean"],
                yerr=g["std"].fillna(0),
                marker="o",
                capsize=3,
                label=f"{ds} ({S.backbone_name(bb)})",
            )
        symbol = {"tau": r"$\tau$", "sigma": r"$\sigma$"}.get(prefix, prefix)
        ax.set(xlabel=symbol, ylabel=S.METRIC_LABEL.get(metric, metric))
        ax.set_title(f"{S.method_name(method)}: {symbol} ablation (mean ± std over seeds)")
        ax.legend(fontsize=7)
        return S.save_figure(fig, path)


def build_all_figures(
    runs: pd.DataFrame, roc: pd.DataFrame, out_dir: str | os.PathLike, metric: str = "auroc"
) -> list[Path]:
    """Every figure into `out_dir` (file names in FIGURE_FILES)."""
    out = Path(out_dir)
    return [
        plot_roc(roc, out / FIGURE_FILES["roc"]),
        plot_seed_distributions(runs, out / FIGURE_FILES["seeds"], metric),
        plot_ablation(runs, out / FIGURE_FILES["tau"], "tau", metric=metric),
        plot_ablation(runs, out / FIGURE_FILES["sigma"], "sigma", metric=metric),
    ]
