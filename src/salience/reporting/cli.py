"""Reporting steps as CLI subcommands: `aggregate`, `tables`, `figures`.

Every path is an argument (docs/conventions.md §7, "Reporting is pure functions"). The lead's `python -m salience`
registers them with `add_parsers(subparsers)`; `python -m salience.reporting.cli` runs them alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salience.errors import SalienceError
from salience.io import atomic_paths, write_json
from salience.reporting.aggregate import (
    collect_roc,
    collect_runs,
    find_run_dirs,
    read_roc_csv,
    read_runs_csv,
)
from salience.reporting.figures import build_all_figures, figure_reasons
from salience.reporting.grid import write_table
from salience.reporting.html import table_reasons, write_report_dir
from salience.reporting.multiclass import false_class_tables
from salience.reporting.origin import check_single_origin
from salience.reporting.overview import check_baseline, overview
from salience.reporting.selection import overall
from salience.reporting.tables import PAPER_METHODS, build_all, papers_of

METRICS = ("auroc", "auroc_sigmoid")


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Run directories → runs.csv (one row per run × subset) and roc.csv (ROC points)."""
    dirs = find_run_dirs(args.runs_root, args.run_list)
    if not dirs:
        print(f"warning: no run with a metrics.json under {args.runs_root}", file=sys.stderr)
    runs = collect_runs(dirs).to_csv(index=False)
    roc = collect_roc(dirs, max_points=args.max_points).to_csv(index=False)
    # both files or neither: a killed aggregate must not leave a runs.csv Snakemake/DVC would trust
    with atomic_paths(args.out_runs, args.out_roc) as (tmp_runs, tmp_roc):
        tmp_runs.write_text(runs)
        tmp_roc.write_text(roc)
    print(f"aggregate: {len(dirs)} runs -> {args.out_runs}, {args.out_roc}")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """runs.csv → <out-dir>/<table id>.csv and .tex: the overview of every method run, then the
    paper tables (empty ones included). A baseline that was not run is a one-line error."""
    runs = read_runs_csv(args.runs)
    papers = papers_of(runs) if args.papers == "auto" else args.papers.split(",")
    for paper, given in (("dd", args.dd_baseline), ("sage", args.sage_baseline)):
        if given is not None and paper in papers:  # an explicit baseline must be a row
            rows = runs[runs["method"].isin(PAPER_METHODS[paper])]
            check_baseline(rows, given, f"--{paper}-baseline", f"the {paper.upper()} tables")
    dd_base, sage_base = args.dd_baseline or "cyborg", args.sage_baseline or "xent"
    built = [overview(runs, args.metric, args.baseline)]
    built += build_all(runs, args.metric, dd_base, sage_base, papers)
    built += false_class_tables(runs, args.metric)  # multi-class studies only (issue 12)
    for table in built:  # every table checked before any is written
        runs_of = table.data[table.data["kind"] == "run"]
        check_single_origin(table.id, runs_of, args.allow_mixed_weights)
    for table in built:
        csv, tex = write_table(table, args.out_dir)
        n = int((table.data["kind"] == "aggregate").sum())
        print(f"tables: {table.id}: {n} cells -> {csv}, {tex}")
    if args.html_dir or args.csv_dir:  # the report's rendered tables and CSV downloads
        omitted = table_reasons(runs, built, papers) | figure_reasons(runs)
        html_dir, csv_dir = args.html_dir or args.out_dir, args.csv_dir or args.out_dir
        written = write_report_dir(built, omitted, html_dir, csv_dir)
        print(
            f"tables: {len(written) // 2} HTML tables -> {html_dir}; left out: {', '.join(omitted)}"
        )
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    """runs.csv + roc.csv → PNG figures in <out-dir>."""
    paths = build_all_figures(
        read_runs_csv(args.runs), read_roc_csv(args.roc), args.out_dir, args.metric
    )
    print("figures: " + ", ".join(str(p) for p in paths))
    return 0


def summary(runs) -> dict:
    """Headline numbers for `dvc metrics show`: run count and, per dataset/method, the mean test
    AUROC of the base variant with the tables' cell definitions (`selection.overall`: held-out attack
    type of leave-one-out folds, mean over generators for faces), over seeds and backbones."""
    base = runs[runs["variant"] == "base"].assign(value=runs["auroc"])
    u = overall(base, prefer_loo=True)
    # as a table cell: one value per seed (its folds' mean), then the mean over seeds and backbones
    per_seed = u.groupby(["dataset", "method", "backbone", "seed"])["value"].mean()
    means = per_seed.groupby(level=[0, 1]).mean()
    return {
        "runs": int(runs["run_id"].nunique()),
        "auroc_mean": {f"{d}/{m}": round(float(v), 4) for (d, m), v in sorted(means.items())},
    }


def cmd_summary(args: argparse.Namespace) -> int:
    """runs.csv → a small JSON of headline metrics (DVC's `metrics:` file)."""
    out = summary(read_runs_csv(args.runs))
    write_json(args.out, out)
    print(f"summary: {out['runs']} runs -> {args.out}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `aggregate`, `tables` and `figures` (each sets `func` to its cmd_* function)."""
    p = subparsers.add_parser("aggregate", help="collect run directories into tidy CSVs")
    p.add_argument("--runs-root", type=Path, required=True, help="directory holding the run dirs")
    p.add_argument("--run-list", type=Path, help="file listing run dirs (relative to --runs-root)")
    p.add_argument("--out-runs", type=Path, required=True, help="tidy runs CSV to write")
    p.add_argument("--out-roc", type=Path, required=True, help="ROC points CSV to write")
    p.add_argument("--max-points", type=int, default=200, help="ROC points kept per curve")
    p.set_defaults(func=cmd_aggregate)

    p = subparsers.add_parser("tables", help="paper tables (CSV + LaTeX) from runs.csv")
    p.add_argument("--runs", type=Path, required=True, help="runs CSV from `aggregate`")
    p.add_argument("--out-dir", type=Path, required=True, help="directory for <id>.csv/.tex")
    p.add_argument("--metric", choices=METRICS, default="auroc", help="softmax p1 or sigmoid AUROC")
    p.add_argument(
        "--baseline",
        help="paired-test baseline of the overview table (default xent, else the first method run)",
    )
    p.add_argument(
        "--dd-baseline", help="paired-test baseline, DD tables (default cyborg; must be a DD row)"
    )
    p.add_argument(
        "--sage-baseline",
        help="paired-test baseline, SAGE tables (default xent; must be a SAGE row)",
    )
    p.add_argument(
        "--allow-mixed-weights",
        action="store_true",
        help="let a table mix random-init and pretrained runs (its caption says so)",
    )
    p.add_argument(
        "--papers",
        choices=["auto", "dd", "sage", "dd,sage"],
        metavar="{auto,dd,sage,'dd,sage'}",
        default="auto",
        help="whose tables to write (auto: each paper with at least two of its methods in the runs)",
    )
    p.add_argument("--html-dir", type=Path, help="also write <id>.html of each non-empty table")
    p.add_argument("--csv-dir", type=Path, help="also copy each non-empty table's CSV here")
    p.set_defaults(func=cmd_tables)

    p = subparsers.add_parser("figures", help="ROC, seed and ablation figures")
    p.add_argument("--runs", type=Path, required=True, help="runs CSV from `aggregate`")
    p.add_argument("--roc", type=Path, required=True, help="ROC CSV from `aggregate`")
    p.add_argument("--out-dir", type=Path, required=True, help="directory for the PNG files")
    p.add_argument("--metric", choices=METRICS, default="auroc", help="softmax p1 or sigmoid AUROC")
    p.set_defaults(func=cmd_figures)

    p = subparsers.add_parser("summary", help="headline metrics JSON (DVC metrics) from runs.csv")
    p.add_argument("--runs", type=Path, required=True, help="runs CSV from `aggregate`")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.set_defaults(func=cmd_summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salience.reporting.cli", description=__doc__)
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SalienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
