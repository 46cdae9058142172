"""`python -m salience <command>`: the one entry point for Snakemake rules, DVC stages, tests and
people. Bad input ends with one line `error: <what and how to fix>` and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from salience.errors import SalienceError, os_error_line

log = logging.getLogger("salience")

# Sub-packages that contribute subcommands through `add_parsers(subparsers)`.
_PLUGINS = (
    "salience.data.cli",
    "salience.reporting.cli",
    "salience.models.cli",
    "salience.methods.cli",
    "salience.evaluation.cli",
    "salience.reporting.rq1",
)


def _config(args: argparse.Namespace) -> dict:
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

    cfg = _config(args)
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
        print(
            f"AUROC (results for {spec.run_id}): "
            + ", ".join(f"{k}={v:.3f}" for k, v in m["auroc"].items())
        )
    # the job's one line on Snakemake's console (train rule: `grep '^done '` of the log)
    print(
        _done_line(spec.run_id, out, m["auroc"].get("all") if args.evaluate else None), flush=True
    )


def _done_line(run_id: str, out, test_auroc: float | None) -> str:
    """`done <run id>: best epoch E, val AUROC V[, test AUROC T]` from run.json / history.csv."""
    import json

    import pandas as pd

    best = int(json.loads((out / "run.json").read_text()).get("best_epoch", -1))
    hist = pd.read_csv(out / "history.csv")
    val = "n/a"
    if best >= 1 and "val_auroc" in hist and len(hist) >= best:
        val = f"{float(hist['val_auroc'].iloc[best - 1]):.3f}"
    test = "" if test_auroc is None else f", test AUROC {test_auroc:.3f}"
    return f"done {run_id}: best epoch {best}, val AUROC {val}{test}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    from salience.evaluation.evaluate import evaluate_checkpoint, evaluate_run

    if args.run_id:
        cfg = _config(args)
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
    aur = ", ".join(f"{k}={v:.3f}" for k, v in m["auroc"].items())
    print(f"AUROC ({where}): {aur}")


def cmd_visualize(args: argparse.Namespace) -> None:
    from salience.visualize import visualize_checkpoint

    if args.run_id:
        from salience import config as C

        cfg = _config(args)
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


def cmd_runs(args: argparse.Namespace) -> None:
    from salience.study import expand_runs, skipped_combinations

    cfg = _config(args)
    for spec in expand_runs(cfg, args.experiment or None):
        print(spec.run_id)
    for s in skipped_combinations(cfg):
        log.info("skipped: %s", s)


def cmd_ui(args: argparse.Namespace) -> None:
    from salience.study import load_config, validate
    from salience.ui import serve

    cfg = (
        load_config(args.config)
        if args.config
        else validate(
            {
                "datasets": {"x": {"task": "custom", "source": "manifest", "manifest": "-"}},
                "experiments": {},
            }
        )
    )
    serve(cfg, host=args.host, port=args.port)


def cmd_dvc_stages(args: argparse.Namespace) -> None:
    from salience import dvcstages

    if args.check:
        dvcstages.check(args.config, args.out, args.cores)
        print(f"{args.out} matches {args.config}")
    else:
        print(f"wrote {dvcstages.write(args.config, args.out, args.cores)} from {args.config}")


def cmd_doctor(args: argparse.Namespace) -> None:
    from salience.doctor import report

    cfg = _config(args) if args.config else None
    print("\n".join(report(cfg)))


# Commands defined in this module, and which plugin defines each of the others: a job imports only
# what its command needs (the reporting plugin alone costs ~2 s of CPU at start-up, paid by every
# job of a study). A command missing from the map, `--help` and errors load every plugin.
_CORE = ("train", "evaluate", "visualize", "runs", "ui", "doctor", "dvc-stages")
_PLUGIN_OF = {
    "generate": "salience.data.cli",
    "prepare": "salience.data.cli",
    "import": "salience.data.cli",
    "aggregate": "salience.reporting.cli",
    "tables": "salience.reporting.cli",
    "figures": "salience.reporting.cli",
    "summary": "salience.reporting.cli",
    "weights": "salience.models.cli",
    "methods": "salience.methods.cli",
    "rq1-score": "salience.evaluation.cli",
    "rq1": "salience.reporting.rq1",
}


def _command_word(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def _add_train(sub: argparse._SubParsersAction) -> None:
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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


def _add_visualize(sub: argparse._SubParsersAction) -> None:
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


def _add_runs(sub: argparse._SubParsersAction) -> None:
    """`runs`: the run ids a config asks for."""
    r = sub.add_parser("runs", help="list the run ids a config asks for")
    r.add_argument("--config", required=True, help="config YAML")
    r.add_argument("--experiment", action="append", help="only these experiments (repeatable)")
    r.set_defaults(func=cmd_runs)


def _add_ui(sub: argparse._SubParsersAction) -> None:
    """`ui`: the MLflow UI on the project's tracking store."""
    u = sub.add_parser(
        "ui", help="MLflow UI on the project's tracking store (127.0.0.1 by default)"
    )
    u.add_argument(
        "--config", help="config whose tracking store to serve (default: results/mlflow)"
    )
    u.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    # the port `mlflow server` itself reads from the environment; argparse converts the default
    u.add_argument(
        "--port",
        type=int,
        default=os.environ.get("MLFLOW_PORT", "5000"),
        help="port (default: $MLFLOW_PORT, else 5000)",
    )
    u.set_defaults(func=cmd_ui)


def _add_dvc_stages(sub: argparse._SubParsersAction) -> None:
    """`dvc-stages`: dvc.yaml from a config."""
    s = sub.add_parser(
        "dvc-stages",
        help="write dvc.yaml (generate, prepare, study stages) from a config (docs/data.md)",
    )
    s.add_argument("--config", required=True, help="config YAML the stages are written from")
    s.add_argument("--out", default="dvc.yaml", help="file to write (default: dvc.yaml)")
    s.add_argument("--cores", type=int, default=2, help="snakemake --cores of the study stage")
    s.add_argument("--check", action="store_true", help="only check that the file matches")
    s.set_defaults(func=cmd_dvc_stages)


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    """`doctor`: environment and config checks."""
    d = sub.add_parser(
        "doctor", help="versions, devices, torchvision shim, tracking URI, determinism"
    )
    d.add_argument("--config", help="also check this config (tracking URI, weight files)")
    d.set_defaults(func=cmd_doctor)


#: the subcommands defined in this module (`_CORE`), in `--help` order
_CORE_PARSERS = (
    _add_train,
    _add_evaluate,
    _add_visualize,
    _add_runs,
    _add_ui,
    _add_dvc_stages,
    _add_doctor,
)


def _add_plugins(sub: argparse._SubParsersAction, argv: list[str] | None) -> None:
    """The plugins' subcommands: only the one that defines `argv`'s command, when known."""
    word = _command_word(argv) if argv is not None else None
    plugins = () if word in _CORE else (_PLUGIN_OF[word],) if word in _PLUGIN_OF else _PLUGINS
    for mod in plugins:
        try:
            plugin = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        plugin.add_parsers(sub)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given `argv`, only the plugin that defines its command is imported."""
    p = argparse.ArgumentParser(prog="salience", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for add in _CORE_PARSERS:
        add(sub)
    _add_plugins(sub, argv)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow", "matplotlib", "PIL", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The one place where the project's error kinds and operating-system errors (full disk,
    # permission denied, file size limit) become the one-line form (docs/robustness.md); `-v`
    # adds the traceback of an OSError for debugging.
    try:
        args.func(args)
    except SalienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`salience runs ... | head`): nothing is wrong with the input; send
        # what is left to /dev/null so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        log.debug("operating-system error", exc_info=True)
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    return 0
