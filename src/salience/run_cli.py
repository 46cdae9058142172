"""`python -m salience train | evaluate | visualize`: one run's training (and test scoring), the
scoring of any checkpoint on any split, and the DD Fig. 1 panels. The parsers are registered by
`salience.cli`, which turns errors into one line (exit 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from salience.errors import SalienceError


def config_of(args: argparse.Namespace) -> dict:
    """The validated study config named by `--config` (salience.study: torch-free)."""
    from salience.study import load_config

    return load_config(args.config)


def _spec(args: argparse.Namespace):
    from salience.config import RunSpec

    return RunSpec.from_run_id(args.run_id)


def _tracker(cfg: dict, enabled: bool):
    if not enabled:
        return None
    from salience.config import tracking_uri
    from salience.tracking import Tracker

    return Tracker(tracking_uri(cfg))


def cmd_train(args: argparse.Namespace) -> None:
    from salience.training.loop import train

    cfg = config_of(args)
    spec = _spec(args)
    if args.evaluate:
        from salience.methods.base import method_class

        final = method_class(spec.method).stages[-1]
        if args.stage != final:
            raise SalienceError(
                f"train --evaluate: only the final stage ({final!r}) of {spec.method} can be scored, "
                f"not {args.stage!r}; drop --evaluate for earlier stages"
            )
    tracker = _tracker(cfg, not args.no_mlflow)
    out = train(cfg, spec, stage=args.stage, tracker=tracker)
    print(f"trained {spec.run_id} ({args.stage}): {out / 'model.pt'}")
    if args.evaluate:
        # Same process and MLflow connection as the training: a separate job per run costs a
        # second interpreter, torch and MLflow start-up (~8 s each on 2 cores; docs/decisions.md).
        from salience.evaluation.evaluate import evaluate_run

        m = evaluate_run(cfg, spec, tracker=tracker)
        print(_auroc_line(f"results for {spec.run_id}", m))
    # the job's one line on Snakemake's console (train rule: `grep '^done '` of the log)
    k = len(cfg["datasets"][spec.dataset].get("classes") or ()) or 2
    test = m["auroc"].get("all") if args.evaluate else None
    print(_done_line(spec.run_id, out, test, k), flush=True)


def _auroc_line(where: str, metrics: dict) -> str:
    """`AUROC (where): all=…, <subset>=…`; a K > 2 model's metrics.json (it lists `classes`) holds
    the macro one-vs-rest AUROC (docs/decisions.md "Multi-class ..."), and the line says so."""
    aur = ", ".join(f"{k}={v:.3f}" for k, v in metrics["auroc"].items())
    k = len(metrics.get("classes") or ())
    name = f"macro one-vs-rest AUROC over {k} classes" if k > 2 else "AUROC"
    return f"{name} ({where}): {aur}"


def _done_line(run_id: str, out, test_auroc: float | None, k: int = 2) -> str:
    """`done <run id>: best epoch E, val AUROC V[, test AUROC T]` from run.json / history.csv; for
    K > 2 classes the line ends with `(macro one-vs-rest AUROC, K classes)`."""
    import json

    import pandas as pd

    best = int(json.loads((out / "run.json").read_text()).get("best_epoch", -1))
    hist = pd.read_csv(out / "history.csv")
    val = "n/a"
    if best >= 1 and "val_auroc" in hist and len(hist) >= best:
        val = f"{float(hist['val_auroc'].iloc[best - 1]):.3f}"
    test = "" if test_auroc is None else f", test AUROC {test_auroc:.3f}"
    macro = f" (macro one-vs-rest AUROC, {k} classes)" if k > 2 else ""
    return f"done {run_id}: best epoch {best}, val AUROC {val}{test}{macro}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    from salience.evaluation.evaluate import evaluate_checkpoint, evaluate_run

    if args.run_id:
        cfg = config_of(args)
        spec = _spec(args)
        m = evaluate_run(cfg, spec, tracker=_tracker(cfg, not args.no_mlflow))
        where = f"results for {spec.run_id}"
    else:
        if not (args.checkpoint and args.prepared and args.out):
            raise SalienceError(
                "evaluate: give --config and --run-id, or --checkpoint, --prepared and --out"
            )
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise SalienceError(
                f"evaluate --out {args.out}: an existing file, not a folder; --out is the folder that "
                f"receives scores.csv and metrics.json: give a new or existing folder"
            )
        m = evaluate_checkpoint(
            Path(args.checkpoint),
            Path(args.prepared),
            args.split,
            Path(args.out),
            backbone=args.backbone,
            method=args.method,
        )
        where = str(args.out)
    print(_auroc_line(where, m))


def cmd_visualize(args: argparse.Namespace) -> None:
    from salience.visualize import visualize_checkpoint

    if args.run_id:
        from salience import config as C

        cfg = config_of(args)
        spec = _spec(args)
        model_path, prepared = C.run_dir(cfg, spec) / "model.pt", C.prepared_dir(cfg, spec.dataset)
        from salience.data.prepared import PreparedDataset

        ds_cfg = cfg["datasets"].get(spec.dataset)
        if ds_cfg is not None:
            PreparedDataset(prepared).check_config(
                spec.dataset, ds_cfg, C.manifest_path(cfg, spec.dataset)
            )
        samples = args.samples or cfg["report"]["visualize_samples"]
    else:
        if not (args.checkpoint and args.prepared):
            raise SalienceError(
                "visualize: give --config and --run-id, or --checkpoint and --prepared"
            )
        model_path, prepared, samples = (
            Path(args.checkpoint),
            Path(args.prepared),
            args.samples or 4,
        )
    out = visualize_checkpoint(
        model_path, prepared, Path(args.out), samples=samples, split=args.split, pairs=args.pairs
    )
    print(f"wrote {out.path}")


def add_train(sub: argparse._SubParsersAction) -> None:
    """`train`: one run, or one stage of a two-stage method."""
    t = sub.add_parser("train", help="train one run (or one stage of a two-stage method)")
    t.add_argument("--config", required=True, help="config YAML of the study")
    t.add_argument("--run-id", required=True, help="dataset/fold/backbone/method/variant/seedN")
    t.add_argument("--stage", default="train", help="train (default) or pretrain (MENTOR stage 1)")
    t.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    t.add_argument(
        "--evaluate",
        action="store_true",
        help="then score the test split as `evaluate --run-id` does (final stage only; what the workflow runs)",
    )
    t.set_defaults(func=cmd_train)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`evaluate`: a run's selected model, or any checkpoint on any split."""
    e = sub.add_parser(
        "evaluate",
        help="score a run's selected model on its test split, or any checkpoint on any split",
    )
    e.add_argument("--config", help="config YAML (with --run-id)")
    e.add_argument("--run-id", help="dataset/fold/backbone/method/variant/seedN (with --config)")
    e.add_argument("--checkpoint", help="model.pt of any run (with --prepared and --out)")
    e.add_argument("--prepared", help="prepared dataset folder")
    e.add_argument("--split", default="test", help="train, val or test (default: test)")
    e.add_argument("--out", help="output folder (with --checkpoint)")
    e.add_argument("--backbone", help="override the checkpoint's backbone metadata")
    e.add_argument("--method", help="override the checkpoint's method metadata")
    e.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    e.set_defaults(func=cmd_evaluate)


def add_visualize(sub: argparse._SubParsersAction) -> None:
    """`visualize`: DD Fig. 1 panels of a run or a checkpoint."""
    v = sub.add_parser(
        "visualize", help="DD Fig. 1 panels: true/false CAMs and Difference Salience"
    )
    v.add_argument("--config", help="config YAML (with --run-id)")
    v.add_argument("--run-id", help="dataset/fold/backbone/method/variant/seedN (with --config)")
    v.add_argument("--checkpoint", help="model.pt of any run (with --prepared)")
    v.add_argument("--prepared", help="prepared dataset folder")
    v.add_argument("--split", default="test", help="train, val or test (default: test)")
    v.add_argument("--samples", type=int, default=None, help="samples per class")
    v.add_argument("--out", required=True, help="PNG path")
    v.add_argument(
        "--pairs",
        action="store_true",
        help="instead of DD Fig. 1, one panel per ordered class pair (i, j): norm(cam_i − cam_j) "
        "on samples of class i, K·(K−1) panels",
    )
    v.set_defaults(func=cmd_visualize)
