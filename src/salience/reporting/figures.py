"""Figures as pure functions: tidy frames in, one PNG out (atomic), path returned.

Figures are drawn on `matplotlib.figure.Figure` with an explicit Agg canvas (no pyplot, no global
state); rcParams come from `style.RC` through `rc_context`. A figure without data still gets
written by a plot_* call with a "no runs" note; `build_all_figures` leaves such figures out
(`figure_reasons` says why, for the report's overview).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from salience.reporting import style as S
from salience.reporting.aggregate import multiclass_datasets
from salience.reporting.selection import overall
from salience.reporting.tables import NO_TEST_MAPS

FIGURE_FILES = {
    "roc": "roc.png",
    "seeds": "seed_auroc.png",
    "tau": "ablation_tau.png",
    "sigma": "ablation_sigma.png",
    "agreement": "cam_agreement.png",
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
    # tab10 repeats after ten colours (twelve methods in the demo): tab20 keeps every method apart
    name = "tab10" if len(ms) <= 10 else "tab20"
    return dict(zip(ms, sns.color_palette(name, max(len(ms), 1))))


TITLES = {
    "cam_agreement": "CAM–human-map agreement (Pearson r) on annotated test images, per seed",
}
FPR_GRID = np.linspace(0.0, 1.0, 101)


def _mean_roc(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean TPR over seeds (and folds) on FPR_GRID, its std, and the number of curves: each
    curve's TPR interpolated at the grid (vertical averaging, Fawcett 2006 §7.1)."""
    curves = []
    for _, c in g.groupby("run_id"):
        c = c.sort_values(["fpr", "tpr"])
        curves.append(np.interp(FPR_GRID, c["fpr"].to_numpy(), c["tpr"].to_numpy()))
    a = np.vstack(curves)
    return a.mean(axis=0), (a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])), len(a)


def plot_roc(roc: pd.DataFrame, path: str | os.PathLike) -> Path:
    """ROC curves (DD/SAGE report AUROC): one panel per dataset × subset, one line per method
    (its first backbone in the papers' order) = mean TPR over seeds at each FPR, band = ± std
    over seeds; legend outside the axes. Leave-one-out datasets show, per fold, the held-out
    subset; other datasets show "all" and each subset."""
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
        fig, axes = _grid(len(panels), ncols=3)
        colors = _palette(d["method"])
        handles: dict[str, object] = {}
        for ax, (ds, sub) in zip(axes, panels):
            p = d[(d["dataset"] == ds) & (d["subset"] == sub)]
            for m in S.ordered(p["method"], S.ALL_METHODS):
                g = p[p["method"] == m]
                g = g[g["backbone"] == S.ordered(g["backbone"], S.BACKBONE_ORDER)[0]]
                mean, std, n = _mean_roc(g)
                (line,) = ax.plot(FPR_GRID, mean, color=colors[m], lw=1.3)
                ax.fill_between(FPR_GRID, mean - std, mean + std, color=colors[m], alpha=0.15, lw=0)
                handles.setdefault(f"{S.method_name(m)} (n = {n})", line)
            ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="FPR", ylabel="TPR")
            ax.set_title(f"{ds}: {S.subset_name(sub) if sub != 'all' else 'all test images'}")
        fig.suptitle("Test ROC, base variant:\nmean over seeds (line) ± std (band)")
        ncol = min(len(handles), 3)
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=ncol)
        return S.save_figure(fig, path)


def plot_seed_distributions(
    runs: pd.DataFrame, path: str | os.PathLike, metric: str = "auroc"
) -> Path:
    """Per-seed overall value of `metric` per method (points) with mean ± std over seeds (bar),
    one panel per dataset, base variant, methods on the y axis (readable labels). Cells as the
    tables: held-out folds' mean per seed for leave-one-out datasets, mean over generators."""
    what = S.METRIC_LABEL.get(metric, metric)
    with mpl.rc_context(S.RC):
        d = runs[runs["variant"] == "base"].dropna(subset=[metric])
        d = overall(d.assign(value=d[metric]), prefer_loo=True)
        if d.empty:
            return _empty(path, "seed distributions")
        keys = ["dataset", "method", "backbone", "seed"]
        d = d.groupby(keys, as_index=False)[metric].mean()
        d["Method"] = d["method"].map(S.method_name)
        d["Backbone"] = d["backbone"].map(S.backbone_name)
        datasets = sorted(d["dataset"].unique())
        n_methods = d["method"].nunique()
        fig, axes = _grid(len(datasets), ncols=3, size=(4.4, 0.9 + 0.32 * n_methods))
        hue = "Backbone" if d["backbone"].nunique() > 1 else None
        for i, (ax, ds) in enumerate(zip(axes, datasets)):
            p = d[d["dataset"] == ds]
            order = [S.method_name(m) for m in S.ordered(d["method"], S.ALL_METHODS)]
            kw = {"data": p, "y": "Method", "x": metric, "hue": hue, "order": order, "ax": ax}
            sns.stripplot(**kw, size=3.5, alpha=0.6, dodge=hue is not None, legend=False)
            sns.pointplot(
                **kw,
                errorbar="sd",
                dodge=0.4 if hue else False,
                linestyle="none",
                marker="|",
                markersize=12,
                capsize=0.25,
                color=None if hue else "k",
                legend=hue is not None and i == 0,
            )
            ax.set_title(ds)
            ax.set(ylabel="", xlabel=f"{what} (dots: seeds; bar: mean ± std)")
            if i % 3:
                ax.tick_params(axis="y", labelleft=False)
        if hue and axes[0].get_legend() is not None:  # one backbone legend, outside the panels
            handles, labels = axes[0].get_legend_handles_labels()
            axes[0].get_legend().remove()
            fig.legend(handles, labels, title="Backbone", loc="outside right upper")
        title = TITLES.get(metric, f"Test {what} per seed, base variant")
        fig.suptitle(f"{title} (mean ± std over seeds)")
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
        ax.set_title(f"{S.method_name(method)}: {symbol} ablation (error bars: ± std over seeds)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return S.save_figure(fig, path)


ABLATION_OF = {"tau": "τ", "sigma": "σ"}


def figure_reasons(runs: pd.DataFrame) -> dict[str, str]:
    """File name → why that figure has nothing to show (and is not written by build_all_figures)."""
    out = {}
    base = runs[runs["variant"] == "base"]
    if base.empty:
        out[FIGURE_FILES["roc"]] = out[FIGURE_FILES["seeds"]] = "no runs of the base variant"
    for prefix, sym in ABLATION_OF.items():
        if not (runs["variant"].str.startswith(prefix + "-") & (runs["method"] == "sage")).any():
            out[FIGURE_FILES[prefix]] = f"no {sym} ablation in this config"
    multi = multiclass_datasets(base)
    if multi:  # roc.csv holds no curve of theirs (aggregate.collect_roc)
        out[f"ROC curves of {', '.join(multi)}"] = (
            "multi-class tasks have one ROC per class, not one binary curve; the overview "
            "reports their macro one-vs-rest AUROC"
        )
    if base["cam_agreement"].isna().all():
        out[FIGURE_FILES["agreement"]] = NO_TEST_MAPS
    if not (runs["method"] == "fooling").any():  # workflow/rules/rq1.smk keeps it out too
        out["DD RQ1 (rq1 table, deletion curves)"] = "no passive-fooling runs in this config"
    return out


def build_all_figures(
    runs: pd.DataFrame, roc: pd.DataFrame, out_dir: str | os.PathLike, metric: str = "auroc"
) -> list[Path]:
    """Every figure with something to show into `out_dir` (file names in FIGURE_FILES); those in
    `figure_reasons(runs)` are not written (the report's overview says why)."""
    out, skip = Path(out_dir), figure_reasons(runs)
    makers = {
        "roc": lambda p: plot_roc(roc, p),
        "seeds": lambda p: plot_seed_distributions(runs, p, metric),
        "tau": lambda p: plot_ablation(runs, p, "tau", metric=metric),
        "sigma": lambda p: plot_ablation(runs, p, "sigma", metric=metric),
        "agreement": lambda p: plot_seed_distributions(runs, p, "cam_agreement"),
    }
    return [
        make(out / FIGURE_FILES[k]) for k, make in makers.items() if FIGURE_FILES[k] not in skip
    ]
