"""Configuration: one YAML file, validated by workflow/schemas/config.schema.yaml, drives Snakemake,
DVC and the CLI. This module loads and checks it (schema + registries) and expands the run grid, so
the list of runs is defined in exactly one place (`expand_runs`).
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


def validate(cfg: dict, source: str = "config") -> dict:
    """Validate against the JSON schema and the registries; return a copy with defaults filled."""
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
    _check_registries(cfg, source)
    _check_report_baseline(cfg, source)
    return cfg


def _check_report_baseline(cfg: dict, source: str) -> None:
    """report.baseline must be a method some experiment runs in its base variant (not a sweep),
    checked before any training: `tables` would stop on it after the whole study."""
    base = cfg.get("report", {}).get("baseline")
    grids = [g for g in cfg["experiments"].values() if "key" not in g]
    ran = list(dict.fromkeys(m for g in grids for m in g["methods"]))
    if base is not None and base not in ran:
        raise ConfigError(
            f"{source}: report.baseline: {base!r} is not run by any experiment (methods run: "
            f"{', '.join(ran)}); pick one of them or remove the key (default xent)"
        )


def load_config(path: str | os.PathLike) -> dict:
    """Read, validate and default-fill a config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            raw = yaml.safe_load(fh)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8 and rerun") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    return validate(raw, str(path))


def _check_registries(cfg: dict, source: str) -> None:
    from salience.methods.base import build_method, method_class
    from salience.models.base import check_backbone_name

    for name, params in cfg.get("methods", {}).items():
        try:
            build_method(name, params)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    for exp, grid in cfg["experiments"].items():
        for ds in grid["datasets"]:
            if ds not in cfg["datasets"]:
                raise ConfigError(
                    f"{source}: experiments.{exp}.datasets: {ds!r} is not defined under datasets "
                    f"(defined: {', '.join(cfg['datasets'])})"
                )
        for bb in grid["backbones"]:
            try:
                check_backbone_name(bb)
            except ConfigError as exc:
                raise ConfigError(f"{source}: experiments.{exp}.backbones: {exc}") from None
        _check_imagenet(cfg, exp, grid, source)
        for m in grid["methods"]:
            try:
                method_class(m)
            except ConfigError as exc:
                raise ConfigError(f"{source}: experiments.{exp}.methods: {exc}") from None
        if "key" in grid:
            _, mname, param = grid["key"].split(".")
            try:
                cls = method_class(mname)
            except ConfigError as exc:
                raise ConfigError(f"{source}: experiments.{exp}.key: {exc}") from None
            if param not in cls.defaults:
                raise ConfigError(
                    f"{source}: experiments.{exp}.key: method {mname!r} has no setting {param!r} "
                    f"(settings: {', '.join(sorted(cls.defaults))})"
                )
    try:
        method_class(cfg["rq1"]["counterpart"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: rq1.counterpart: {exc}") from None
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


def _check_imagenet(cfg: dict, exp: str, grid: dict, source: str) -> None:
    """`model.weights: imagenet` needs a pinned ImageNet file for every backbone of the grid."""
    if cfg["model"]["weights"] != "imagenet":
        return
    from salience.models.weights import imagenet_file, no_imagenet_file

    for bb in grid["backbones"]:
        if imagenet_file(bb) is None:
            raise ConfigError(f"{source}: experiments.{exp}.backbones: {no_imagenet_file(bb)}")


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


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def experiment_variants(cfg: dict, exp: str) -> list[str]:
    grid = cfg["experiments"][exp]
    if exp == "sanity":
        return [VARIANT_BASE, VARIANT_FLIPPED]
    if "key" in grid:
        return [f"{sweep_label(grid)}-{_fmt(v)}" for v in grid["values"]]
    return [VARIANT_BASE]


def variant_overrides(cfg: dict, variant: str) -> dict[str, Any]:
    """Dotted-key overrides that define a variant ("base", "flipped", "<label>-<value>")."""
    if variant == VARIANT_BASE:
        return {}
    if variant == VARIANT_FLIPPED:
        return {"flip_maps": True}
    for grid in cfg["experiments"].values():
        if "key" in grid:
            for v in grid["values"]:
                if variant == f"{sweep_label(grid)}-{_fmt(v)}":
                    return {grid["key"]: v}
    raise ConfigError(f"variant {variant!r} is not defined by any experiment in the config")


def expand_runs(cfg: dict, experiments: list[str] | None = None) -> list[RunSpec]:
    """Every run the config asks for (deduplicated, sorted). Combinations a method cannot serve
    (method.supported_backbones) and flipped-map runs of methods that never read maps are skipped."""
    from salience.methods.base import method_class

    runs: set[RunSpec] = set()
    for exp, grid in cfg["experiments"].items():
        if experiments is not None and exp not in experiments:
            continue
        for variant in experiment_variants(cfg, exp):
            for ds in grid["datasets"]:
                for fold in folds(cfg, ds):
                    for bb in grid["backbones"]:
                        for m in grid["methods"]:
                            cls = method_class(m)
                            if (
                                cls.supported_backbones is not None
                                and bb not in cls.supported_backbones
                            ):
                                continue
                            if cls.own_network and bb != home_backbone(grid["backbones"]):
                                continue
                            if variant == VARIANT_FLIPPED and not cls.uses_maps:
                                continue
                            for seed in grid["seeds"]:
                                runs.add(RunSpec(ds, fold, bb, m, variant, int(seed)))
    return sorted(runs)


def home_backbone(backbones: list[str]) -> str:
    """The grid backbone under which a method with its own network (GazeGNN) runs, once:
    resnet50 when listed (SAGE Table 1 lists GazeGNN with ResNet-50), else the first listed."""
    from salience.methods.base import HOME_BACKBONE

    return HOME_BACKBONE if HOME_BACKBONE in backbones else backbones[0]


def skipped_combinations(cfg: dict) -> list[str]:
    """Human-readable list of (method, backbone) pairs the grid skips, for logs and docs."""
    from salience.methods.base import method_class

    out = set()
    for grid in cfg["experiments"].values():
        for bb in grid["backbones"]:
            for m in grid["methods"]:
                cls = method_class(m)
                if cls.supported_backbones is not None and bb not in cls.supported_backbones:
                    out.add(f"{m} on {bb}: {cls.unsupported_reason or 'unsupported'}")
                elif cls.own_network and bb != home_backbone(grid["backbones"]):
                    home = home_backbone(grid["backbones"])
                    out.add(
                        f"{m} on {bb}: brings its own network ({cls.own_network}), run once under {home}"
                    )
    return sorted(out)


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def resolve_run(cfg: dict, spec: RunSpec) -> dict:
    """The complete configuration of one run (logged as MLflow params, stored in run.json)."""
    from salience.methods.base import method_class

    if spec.dataset not in cfg["datasets"]:
        raise ConfigError(f"dataset {spec.dataset!r} is not defined in the config")
    if spec.fold not in folds(cfg, spec.dataset):
        raise ConfigError(
            f"fold {spec.fold!r} is not a fold of dataset {spec.dataset!r} (folds: {', '.join(folds(cfg, spec.dataset))})"
        )
    base = copy.deepcopy(cfg)
    for key, value in variant_overrides(cfg, spec.variant).items():
        _set_dotted(base, key, value)
    cls = method_class(spec.method)
    params = {**cls.defaults, **base.get("methods", {}).get(spec.method, {})}
    return {
        "run_id": spec.run_id,
        "dataset": spec.dataset,
        "task": cfg["datasets"][spec.dataset]["task"],
        "fold": spec.fold,
        "backbone": spec.backbone,
        "method": spec.method,
        "method_params": params,
        "variant": spec.variant,
        "seed": spec.seed,
        "flip_maps": bool(base.get("flip_maps", False)),
        "train": base["train"],
        "model": base["model"],
        "data": {k: v for k, v in cfg["datasets"][spec.dataset].items() if k != "generator"},
    }


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
