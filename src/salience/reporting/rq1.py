"""DD RQ1 as a table and a figure: agreement and faithfulness of the true-class CAM (t), the
false-class CAM (f) and Difference Salience (d) of passively fooled models and of their unfooled
counterpart (CYBORG trained with the real maps), from each run's rq1.json / rq1_images.csv
(`salience.evaluation.rq1`).

Table (`rq1.csv`, tidy; `rq1.tex`, booktabs): per dataset, model and map kind, the mean ± std over
seeds of CC, SIM, KL, NSS (against the human map) and of the deletion and insertion AUC (true-class
logit margin; random order as the reference). Each d row carries two paired tests of d against t:
over seeds (`reporting.stats.paired_test`, the seed-level test every table uses; needs ≥ 2 seeds)
and over test images (the per-image values averaged over seeds; Wilcoxon too when n ≥ 6), which
still tests one fooled seed. A seed with several folds (iris) counts once, with the folds' mean.

Figure (`rq1_deletion.png`): deletion curves, one panel per dataset × model, mean over seeds of the
runs' mean curves; band ±1 std over seeds (≥ 2 seeds) or ±1 standard error over the images of the
one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from salience.errors import DataError
from salience.io import atomic_paths
from salience.reporting import style as S
from salience.reporting.stats import paired_test, summarize

KINDS = ("t", "f", "d", "random")
KIND_NAMES = {
    "t": "True-class CAM",
    "f": "False-class CAM",
    "d": "Difference Salience",
    "random": "Random order",
}
# metric → (header, direction): "higher" or "lower" is better
METRICS = {
    "cc": ("CC", "higher"),
    "sim": ("SIM", "higher"),
    "kl": ("KL", "lower"),
    "nss": ("NSS", "higher"),
    "deletion_auc": ("Deletion AUC", "lower"),
    "insertion_auc": ("Insertion AUC", "higher"),
}
TABLE_COLUMNS = ["dataset", "method", "model", "kind", "map", "metric", "better", "mean", "std"]
TABLE_COLUMNS += ["n_seeds", "p_seeds_d_vs_t", "n_images_d_vs_t", "p_images_d_vs_t"]
TABLE_COLUMNS += ["p_wilcoxon_images_d_vs_t"]
FILES = {"table": "rq1.csv", "latex": "rq1.tex", "figure": "rq1_deletion.png"}


def _load(path: Path) -> tuple[dict, pd.DataFrame]:
    images = path.with_name("rq1_images.csv")
    for p in (path, images):
        if not p.is_file():
            raise DataError(
                f"{p}: missing; run `python -m salience rq1-score --run-id ...` for this run"
            )
    try:
        body = json.loads(path.read_text())
        run = body["run_id"]
        _ = body["agreement"], body["faithfulness"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: not an rq1.json written by rq1-score ({exc}); score the run again"
        ) from None
    per_image = pd.read_csv(images)
    per_image["run_id"] = run
    return body, per_image


def read_rq1(paths: list[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """rq1.json files → (runs: one row per run × kind with the run's means; images: per-image
    values; curves: one row per run × mode × kind × step, with the mean and standard error)."""
    runs, images, curves = [], [], []
    for p in map(Path, paths):
        body, per_image = _load(p)
        desc = {k: body[k] for k in ("run_id", "dataset", "fold", "backbone", "method", "seed")}
        faith = body["faithfulness"]
        for kind in KINDS:
            row = {**desc, "kind": kind}
            row |= {
                m: (body["agreement"].get(kind) or {}).get(m) for m in ("cc", "sim", "kl", "nss")
            }
            for mode in ("deletion", "insertion"):
                f = faith[mode][kind]
                row[f"{mode}_auc"] = f["auc"]
                for step, (x, y, se) in enumerate(
                    zip(faith["fractions"], f["curve"], f["sem"], strict=True)
                ):
                    curves.append(
                        {
                            **desc,
                            "mode": mode,
                            "kind": kind,
                            "step": step,
                            "fraction": x,
                            "margin": y,
                            "sem": se,
                        }
                    )
            runs.append(row)
        images.append(
            per_image.assign(**{k: desc[k] for k in ("dataset", "fold", "method", "seed")})
        )
    cols = ["run_id", "dataset", "fold", "method", "seed", "row", "kind", *METRICS]
    img = pd.concat(images, ignore_index=True) if images else pd.DataFrame(columns=cols)
    return pd.DataFrame(runs), img, pd.DataFrame(curves)


def _per_seed(runs: pd.DataFrame, metric: str) -> dict:
    """{(dataset, method, kind): {seed: value}} with a seed's folds averaged."""
    if runs.empty:
        return {}
    d = runs.dropna(subset=[metric]).groupby(["dataset", "method", "kind", "seed"])[metric].mean()
    return {k: g.droplevel([0, 1, 2]).to_dict() for k, g in d.groupby(level=[0, 1, 2])}


def _per_image(images: pd.DataFrame, dataset: str, method: str, kind: str, metric: str) -> dict:
    sub = images[
        (images["dataset"] == dataset) & (images["method"] == method) & (images["kind"] == kind)
    ]
    sub = sub.dropna(subset=[metric])
    return sub.groupby(["fold", "row"])[metric].mean().to_dict()


def rq1_table(
    runs: pd.DataFrame, images: pd.DataFrame, counterpart: str = "cyborg"
) -> pd.DataFrame:
    """The tidy RQ1 table (TABLE_COLUMNS): one row per dataset × model × map kind × metric."""
    out = []
    methods = S.ordered(runs["method"].unique(), ["fooling", counterpart]) if len(runs) else []
    for metric, (_, better) in METRICS.items():
        vals = _per_seed(runs, metric)
        for dataset in sorted(runs["dataset"].unique()) if len(runs) else []:
            for method in methods:
                for kind in KINDS:
                    v = vals.get((dataset, method, kind))
                    if not v:
                        continue
                    sm = summarize(list(v.values()))
                    row = {"dataset": dataset, "method": method, "model": S.method_name(method)}
                    row |= {
                        "kind": kind,
                        "map": KIND_NAMES[kind],
                        "metric": metric,
                        "better": better,
                    }
                    row |= {"mean": sm.mean, "std": sm.std, "n_seeds": sm.n}
                    if kind == "d":
                        row["p_seeds_d_vs_t"] = paired_test(
                            v, vals.get((dataset, method, "t"), {})
                        ).p_ttest
                        test = paired_test(
                            _per_image(images, dataset, method, "d", metric),
                            _per_image(images, dataset, method, "t", metric),
                        )
                        row |= {"n_images_d_vs_t": test.n, "p_images_d_vs_t": test.p_ttest}
                        row["p_wilcoxon_images_d_vs_t"] = test.p_wilcoxon
                    out.append(row)
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def _p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return S.DASH
    return "$<$0.001" if p < 0.001 else f"{p:.3f}"


def rq1_latex(table: pd.DataFrame, caption: str) -> str:
    """booktabs: rows dataset × model × map (+ a p row of d vs t over images), columns METRICS."""
    arrow = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}
    short = {"Deletion AUC": "Del.\\ AUC", "Insertion AUC": "Ins.\\ AUC"}
    cols = [f"{short.get(h, h)} {arrow[b]}" for h, b in METRICS.values()]
    body = []
    for (dataset, method), g in table.groupby(["dataset", "method"], sort=False):
        model = "fooled" if method == "fooling" else S.method_name(method)
        for kind in KINDS:
            k = g[g["kind"] == kind].set_index("metric")
            if k.empty:
                continue
            cells = [
                S.cell(k.at[m, "mean"], _none(k.at[m, "std"])) if m in k.index else S.DASH
                for m in METRICS
            ]
            body.append(([dataset, model, kind], cells))
        d = g[g["kind"] == "d"].set_index("metric")
        if not d.empty:
            cells = [
                _p(_none(d.at[m, "p_images_d_vs_t"])) if m in d.index else S.DASH for m in METRICS
            ]
            body.append(([dataset, model, "p (d vs t)"], cells))
    tex = S.render_latex("rq1", caption, ["Dataset", "Model", "Map"], cols, body)
    # nine columns of "mean ± std": a smaller font and narrower gaps keep it within the text width
    return tex.replace("\\small\n", "\\scriptsize\n\\setlength{\\tabcolsep}{3pt}\n", 1)


def _none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


CAPTION = (
    "DD RQ1: does Difference Salience point at plausible evidence when the true-class CAM was "
    "trained to hide it (passive fooling)? Maps: t = true-class CAM, f = false-class CAM, d = "
    "Difference Salience norm(t $-$ f), random = random pixel order (faithfulness reference). "
    "Agreement with the human map (CC, SIM, NSS: higher is "
    "closer; KL: lower) and faithfulness (deletion AUC of the true-class logit margin: lower = the "
    "map ranks the model's evidence first; insertion AUC: higher), mean $\\pm$ std over seeds; p: "
    "paired t-test of d against t over test images (values averaged over seeds)."
)


def plot_deletion(curves: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Deletion curves of t, f, d and random: one panel per dataset × model (mean, band)."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = curves[curves["mode"] == "deletion"] if len(curves) else curves
    groups = d.groupby(["dataset", "method"]).groups if len(d) else {}
    panels = sorted(groups, key=lambda k: (k[0], k[1] != "fooling", k[1]))  # fooled model first
    with mpl.rc_context(S.RC):
        n = max(1, len(panels))
        fig = Figure(figsize=(3.4 * min(n, 3), 2.9 * math.ceil(n / 3)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(math.ceil(n / 3), min(n, 3), squeeze=False).ravel())
        if not panels:
            axes[0].text(0.5, 0.5, "no fooling runs", ha="center", va="center")
            axes[0].set_axis_off()
        colors = {"t": "tab:red", "f": "tab:blue", "d": "tab:green", "random": "grey"}
        for ax, (dataset, method) in zip(axes, panels, strict=False):
            sub = d[(d["dataset"] == dataset) & (d["method"] == method)]
            for kind in KINDS:
                k = sub[sub["kind"] == kind]
                per_seed = k.groupby(["seed", "step"])[["fraction", "margin", "sem"]].mean()
                seeds = per_seed.index.get_level_values(0).nunique()
                g = per_seed.groupby(level=1)
                x, y = g["fraction"].mean(), g["margin"].mean()
                band = g["margin"].std(ddof=1) if seeds >= 2 else g["sem"].mean()
                ax.plot(
                    x,
                    y,
                    color=colors[kind],
                    label=KIND_NAMES[kind],
                    ls="--" if kind == "random" else "-",
                )
                ax.fill_between(x, y - band, y + band, color=colors[kind], alpha=0.15, lw=0)
            ax.set_title(f"{dataset}: {S.method_name(method)}", fontsize=9)
            ax.set_xlabel("fraction of pixels blurred")
            ax.set_ylabel("true-class logit margin")
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        if panels:
            axes[0].legend(fontsize=7)
        return S.save_figure(fig, path)


def build_rq1(
    paths: list[str | os.PathLike], out_dir: str | os.PathLike, counterpart: str
) -> list[Path]:
    """rq1.json files → rq1.csv, rq1.tex, rq1_deletion.png in `out_dir` (the two tables together)."""
    runs, images, curves = read_rq1(paths)
    table = rq1_table(runs, images, counterpart)
    out = Path(out_dir)
    with atomic_paths(out / FILES["table"], out / FILES["latex"]) as (tmp_csv, tmp_tex):
        table.to_csv(tmp_csv, index=False)
        tmp_tex.write_text(rq1_latex(table, CAPTION))
    plot_deletion(curves, out / FILES["figure"])
    return [out / f for f in FILES.values()]


def cmd_rq1(args: argparse.Namespace) -> int:
    paths = build_rq1(args.inputs, args.out_dir, args.counterpart)
    print("rq1: " + ", ".join(str(p) for p in paths))
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `rq1` (table and figure from the runs' rq1.json files)."""
    p = subparsers.add_parser(
        "rq1", help="DD RQ1 table and deletion-curve figure from rq1.json files"
    )
    p.add_argument("--inputs", nargs="*", default=[], help="rq1.json files (from rq1-score)")
    p.add_argument(
        "--out-dir", type=Path, required=True, help="directory for rq1.csv/.tex/_deletion.png"
    )
    p.add_argument("--counterpart", default="cyborg", help="unfooled method (table order)")
    p.set_defaults(func=cmd_rq1)
