"""Configuration core (torch-free, imports nothing above `salience.errors`): one YAML file,
validated by workflow/schemas/config.schema.yaml, drives Snakemake, DVC and the CLI. This module
reads it, checks the schema, the names and the datasets, and defines run ids (`RunSpec`) and paths.
The study plan on top of it (methods, backbones, the run grid `expand_runs`, `resolve_run`) is
`salience.study`; commands that plan or run a study load configs with `salience.study.load_config`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from salience.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
PACKAGE_SCHEMA = Path(__file__).resolve().parent / "config.schema.yaml"  # fallback for wheels
VARIANT_BASE = "base"
VARIANT_FLIPPED = "flipped"

# Every name that becomes a folder, a part of a run id, an MLflow metric name or a shell argument
# (dataset, subset = attack type / generator, fold, experiment, sweep label): MLflow refuses metric
# names with '+', a space splits a shell argument and '/' a run id. Defined here, once.
NAME_CHARS = "letters, digits, '_', '.' and '-', starting with a letter or digit"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a dataset/subset/fold/experiment name, or None when it can."""
    if NAME_RE.match(str(name)):
        return None
    return (
        f"name {name!r} may use only {NAME_CHARS} (it becomes a folder, a run id part, an MLflow "
        f"metric name and a shell argument)"
    )


def _check_names(cfg: dict, source: str) -> None:
    """Names from the config that end up in paths, metric names or shell arguments."""
    named = [(f"datasets.{d}", d) for d in cfg.get("datasets", {})]
    for d, ds in cfg.get("datasets", {}).items():
        named += [(f"datasets.{d}.holdout_subsets", s) for s in ds.get("holdout_subsets") or []]
    for e, grid in cfg.get("experiments", {}).items():
        if "key" in grid:
            named.append((f"experiments.{e}.label", sweep_label(grid)))
    for where, name in named:
        problem = name_problem(name)
        if problem:
            raise ConfigError(f"{source}: {where}: {problem}; rename it")


#: Names with a meaning in the pipeline, refused as subset (attack type / generator) and fold
#: names at import, prepare and config time (issue 10.2, docs/data.md): "all" is the overall
#: AUROC key of metrics.json / runs.csv and the fold of runs without a held-out subset; "." and
#: ".." are path components (fold names are run-folder names).
RESERVED_NAMES = ("all", ".", "..")
#: A subset "sigmoid_x" would log test_auroc_sigmoid_x, the σ-AUROC of subset "x", in MLflow.
RESERVED_PREFIXES = ("sigmoid_",)


def subset_problem(name: str) -> str | None:
    """Why `name` cannot be a subset (attack type / generator) name: outside the name charset or
    reserved; None when it can. Every reader of subset names (importers, manifest, prepared data,
    config) asks this one question, so an importer never writes what `prepare` refuses."""
    return name_problem(name) or reserved_name(name)


def reserved_name(name: str) -> str | None:
    """Why `name` cannot be a subset or fold name, or None when it can."""
    if name.lower() in RESERVED_NAMES:
        return (
            f"{name!r} is a reserved name ('all' is the overall AUROC and the fold without a "
            f"held-out subset; '.' and '..' are folders); reserved: {', '.join(RESERVED_NAMES)}"
        )
    for prefix in RESERVED_PREFIXES:
        if name.lower().startswith(prefix):
            return (
                f"{name!r} starts with the reserved prefix {prefix!r} (it would collide with the "
                f"metric test_auroc_{name} of subset {name[len(prefix) :]!r})"
            )
    return None


@lru_cache(maxsize=1)
def schema() -> dict:
    path = SCHEMA_PATH if SCHEMA_PATH.is_file() else PACKAGE_SCHEMA
    with open(path) as fh:
        return yaml.safe_load(fh)


def _fill_defaults(node: Any, sch: dict, root: dict) -> None:
    """Fill schema `default:` values into `node` in place (objects only, recursively)."""
    if "$ref" in sch:
        sch = root["$defs"][sch["$ref"].split("/")[-1]]
    if not isinstance(node, dict):
        return
    for key, sub in sch.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key not in node and sub.get("type") == "object" and "properties" in sub:
            node[key] = {}
        if key in node:
            _fill_defaults(node[key], sub, root)
    extra = sch.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in sch.get("properties", {}):
                _fill_defaults(value, extra, root)


def validate_core(cfg: dict, source: str = "config") -> dict:
    """Validate against the JSON schema, the name rules and the dataset cross-references; return
    a copy with the schema's defaults filled. The check of the study plan (methods, backbones,
    settings, experiment fields) is `salience.study.validate`, which calls this first."""
    import jsonschema

    cfg = copy.deepcopy(cfg) if cfg is not None else {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys")
    sch = schema()
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            msg = err.message.replace("Additional properties are not allowed", "unknown key")
            msg += " (remove it or check its spelling against workflow/schemas/config.schema.yaml)"
        else:
            msg = err.message
        raise ConfigError(f"{source}: {where}: {msg}")
    _fill_defaults(cfg, sch, sch)
    _check_names(cfg, source)
    _check_datasets(cfg, source)
    return cfg


def read_yaml(path: str | os.PathLike) -> Any:
    """The parsed YAML of a config file; a missing file, bad encoding or bad YAML is one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return yaml.safe_load(fh)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8 and rerun") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None


def _check_datasets(cfg: dict, source: str) -> None:
    """Each dataset's source fields and held-out subsets, and each experiment's datasets."""
    for exp, grid in cfg.get("experiments", {}).items():
        for ds in grid["datasets"]:
            if ds not in cfg["datasets"]:
                raise ConfigError(
                    f"{source}: experiments.{exp}.datasets: {ds!r} is not defined under datasets "
                    f"(defined: {', '.join(cfg['datasets'])})"
                )
    for name, ds in cfg["datasets"].items():
        if ds["source"] == "manifest" and not ds.get("manifest"):
            raise ConfigError(
                f"{source}: datasets.{name}.manifest: required when source is 'manifest'"
            )
        if ds["source"] == "generated" and not ds.get("generator"):
            raise ConfigError(
                f"{source}: datasets.{name}.generator: required when source is 'generated'"
            )
        for sub in ds["holdout_subsets"]:
            why = reserved_name(sub)
            if why:
                raise ConfigError(
                    f"{source}: datasets.{name}.holdout_subsets: {why}; rename that subset in the "
                    f"manifest and here"
                )
        if ds["folds"] == "leave_one_subset_out" and not ds["holdout_subsets"]:
            raise ConfigError(
                f"{source}: datasets.{name}.holdout_subsets: list the subsets to hold out "
                f"(one fold each) when folds is leave_one_subset_out"
            )


# ------------------------------------------------------------------------------------- run grid
@dataclass(frozen=True, order=True)
class RunSpec:
    dataset: str
    fold: str
    backbone: str
    method: str
    variant: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.dataset}/{self.fold}/{self.backbone}/{self.method}/{self.variant}/seed{self.seed}"

    @classmethod
    def from_run_id(cls, run_id: str) -> RunSpec:
        parts = run_id.strip("/").split("/")
        if len(parts) != 6 or not re.fullmatch(r"seed\d+", parts[5]):
            raise ConfigError(
                f"run id {run_id!r}: expected dataset/fold/backbone/method/variant/seedN with N a "
                f"whole number (list the run ids with `python -m salience runs --config CFG`)"
            )
        return cls(*parts[:5], seed=int(parts[5][4:]))


def folds(cfg: dict, dataset: str) -> list[str]:
    """Fold names of a dataset: ["all"] or the held-out subsets."""
    ds = cfg["datasets"][dataset]
    return list(ds["holdout_subsets"]) if ds["folds"] == "leave_one_subset_out" else ["all"]


def sweep_label(grid: dict) -> str:
    return grid.get("label") or grid["key"].split(".")[-1]


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------- paths
def raw_dir(cfg: dict, dataset: str) -> Path:
    return Path(cfg["data_dir"]) / "raw" / dataset


def manifest_path(cfg: dict, dataset: str) -> Path:
    ds = cfg["datasets"][dataset]
    if ds["source"] == "manifest":
        return Path(ds["manifest"])
    return raw_dir(cfg, dataset) / "manifest.csv"


def prepared_dir(cfg: dict, dataset: str) -> Path:
    return Path(cfg["data_dir"]) / "prepared" / dataset


def run_dir(cfg: dict, spec: RunSpec) -> Path:
    return Path(cfg["results_dir"]) / "runs" / spec.run_id


def tracking_uri(cfg: dict) -> str:
    """Explicit URI > $MLFLOW_TRACKING_URI > a SQLite store under results_dir (never MLflow's
    cwd-relative default, docs/toolchain.md "MLflow 3.x")."""
    if cfg.get("tracking_uri"):
        return cfg["tracking_uri"]
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = (Path(cfg["results_dir"]) / "mlflow" / "mlflow.db").resolve()
    return f"sqlite:///{db}"
