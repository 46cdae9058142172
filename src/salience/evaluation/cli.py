"""`python -m salience rq1-score`: DD RQ1 measurements of one trained CAM-head run
(`salience.evaluation.rq1`); the `rq1` reporting command turns them into the table and figure."""

from __future__ import annotations

import argparse


def cmd_rq1_score(args: argparse.Namespace) -> None:
    import torch

    from salience.config import RunSpec
    from salience.evaluation.rq1 import score_run
    from salience.study import load_config

    cfg = load_config(args.config)
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    spec = RunSpec.from_run_id(args.run_id)
    body = score_run(cfg, spec)
    agree = ", ".join(
        f"{k}: CC={v['cc'] if v['cc'] is None else round(v['cc'], 3)}"
        for k, v in body["agreement"].items()
    )
    dele = ", ".join(f"{k}={v['auc']:.3f}" for k, v in body["faithfulness"]["deletion"].items())
    print(f"rq1-score {spec.run_id}: {agree}; deletion AUC {dele}")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `rq1-score`."""
    p = subparsers.add_parser(
        "rq1-score",
        help="DD RQ1: CC/SIM/KL/NSS and deletion/insertion curves of t, f and Difference Salience of a run",
    )
    p.add_argument("--config", required=True, help="config YAML (the run's study)")
    p.add_argument("--run-id", required=True, help="dataset/fold/backbone/method/variant/seedN")
    p.set_defaults(func=cmd_rq1_score)
