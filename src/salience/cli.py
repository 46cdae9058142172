"""`python -m salience <command>`: the one entry point for Snakemake rules, DVC stages, tests and
people. Bad input ends with one line `error: <what and how to fix>` and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from salience.errors import SalienceError, os_error_line
from salience.run_cli import add_evaluate, add_train, add_visualize, config_of

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


def cmd_runs(args: argparse.Namespace) -> None:
    from salience.study import expand_runs, skipped_combinations

    cfg = config_of(args)
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

    cfg = config_of(args) if args.config else None
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


#: the core subcommands (`_CORE`; one run's train / evaluate / visualize live in run_cli.py), in
#: `--help` order
_CORE_PARSERS = (
    add_train,
    add_evaluate,
    add_visualize,
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
