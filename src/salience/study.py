"""The study plan (layer 5, torch-free): a config checked against the method catalogue and the
backbone names, and expanded into runs. `expand_runs` is the one definition of the grid
(experiments → runs) that Snakemake, DVC, the CLI, the tests and the docs ask; `resolve_run` is the
complete configuration of one run (run.json, the MLflow params).

Only the torch-free catalogues are read here (`salience.methods.catalogue`,
`salience.models.catalogue`), so validating a config and planning the DAG never import torch
(docs/decisions.md, "torch-free configuration layer"). The core below it is `salience.config`.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from salience.config import (
    VARIANT_BASE,
    VARIANT_FLIPPED,
    RunSpec,
    folds,
    read_yaml,
    sweep_label,
    validate_core,
)
from salience.errors import ConfigError
from salience.methods import catalogue
from salience.methods.settings import check_overrides
from salience.models.catalogue import check_backbone_name, imagenet_file, no_imagenet_file

__all__ = [
    "HOME_BACKBONE",
    "load_config",
    "validate",
    "experiment_variants",
    "variant_overrides",
    "expand_runs",
    "rq1_fooled_runs",
    "rq1_runs",
    "rq1_settings",
    "home_backbone",
    "skipped_combinations",
    "resolve_run",
]

#: The grid backbone under which a method with its own network (GazeGNN) runs, once: SAGE Table 1
#: lists GazeGNN with ResNet-50.
HOME_BACKBONE = "resnet50"

#: Experiment fields that once followed from the experiment's name (docs/decisions.md, "Experiment
#: fields"): an experiment of that name must now say so, so that an old config never silently
#: changes meaning.
NAMED_FIELDS = {
    "sanity": ("flipped_maps", "base + flipped-map (1 − h) runs, SAGE Table 3"),
    "fooling": ("rq1_fooled", "its runs are DD RQ1's fooled models: DD Fig. 1 panels, rq1 table"),
}


def load_config(path: str | os.PathLike) -> dict:
    """Read, validate (schema, names, datasets, methods, backbones, experiment fields) and
    default-fill a config file. Errors: one-line ConfigError naming the file and key."""
    return validate(read_yaml(path), str(path))


def validate(cfg: dict, source: str = "config") -> dict:
    """`salience.config.validate_core`, then the plan: method settings, every experiment's
    backbones, methods, sweep key and declared fields, rq1.counterpart and report.baseline.
    Returns a copy with defaults filled."""
    cfg = validate_core(cfg, source)
    for name, params in cfg.get("methods", {}).items():
        try:
            check_overrides(name, catalogue.get(name).settings, params)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    for exp, grid in cfg["experiments"].items():
        _check_experiment(cfg, exp, grid, source)
    try:
        catalogue.get(cfg["rq1"]["counterpart"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: rq1.counterpart: {exc}") from None
    _check_report_baseline(cfg, source)
    return cfg


def _check_experiment(cfg: dict, exp: str, grid: dict, source: str) -> None:
    where = f"{source}: experiments.{exp}"
    for bb in grid["backbones"]:
        try:
            check_backbone_name(bb)
        except ConfigError as exc:
            raise ConfigError(f"{where}.backbones: {exc}") from None
    if cfg["model"]["weights"] == "imagenet":
        # `model.weights: imagenet` needs a pinned ImageNet file for every backbone of the grid
        for bb in grid["backbones"]:
            if imagenet_file(bb) is None:
                raise ConfigError(f"{where}.backbones: {no_imagenet_file(bb)}")
    for m in grid["methods"]:
        try:
            catalogue.get(m)
        except ConfigError as exc:
            raise ConfigError(f"{where}.methods: {exc}") from None
    if "key" in grid:
        _, mname, param = grid["key"].split(".")
        try:
            info = catalogue.get(mname)
        except ConfigError as exc:
            raise ConfigError(f"{where}.key: {exc}") from None
        if param not in info.settings:
            raise ConfigError(
                f"{where}.key: method {mname!r} has no setting {param!r} "
                f"(settings: {', '.join(sorted(info.settings))})"
            )
        _check_false_class_sweep(cfg, grid, param, where)
    if exp in NAMED_FIELDS and NAMED_FIELDS[exp][0] not in grid:
        field, meaning = NAMED_FIELDS[exp]
        raise ConfigError(
            f"{where}: the experiment's name no longer implies {field} ({meaning}); add "
            f"`{field}: true` to keep that meaning, or `{field}: false` (docs/decisions.md)"
        )


def _check_false_class_sweep(cfg: dict, grid: dict, param: str, where: str) -> None:
    """A false_class sweep needs a dataset with K > 2 classes: with K = 2 every choice is DD
    Eqs. 3-5 (docs/decisions.md "Multi-class ..."), so the sweep would plan identical trainings."""
    if param != "false_class":
        return
    names = grid["datasets"]
    if not any(len(cfg["datasets"][d].get("classes") or ()) > 2 for d in names):
        raise ConfigError(
            f"{where}.key: {grid['key']} sweeps false_class, but every dataset of the experiment "
            f"({', '.join(names)}) is binary, and false_class has no effect for K = 2 (identical "
            f"trainings); add a dataset with more than two `classes`, or remove the experiment"
        )


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


# ------------------------------------------------------------------------------------- run grid
def _fmt(v: float | str) -> str:
    """A sweep value in a variant name: a choice as named (e.g. false_class `mean`, issue 12),
    a whole number without its `.0`."""
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else str(v)


def experiment_variants(cfg: dict, exp: str) -> list[str]:
    """Variants of an experiment: base (+ flipped with `flipped_maps: true`), or one per value of
    a sweep ("<label>-<value>")."""
    grid = cfg["experiments"][exp]
    if grid.get("flipped_maps", False):
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
    runs: set[RunSpec] = set()
    for exp, grid in cfg["experiments"].items():
        if experiments is not None and exp not in experiments:
            continue
        home = home_backbone(grid["backbones"])
        methods = {m: catalogue.get(m) for m in grid["methods"]}
        for variant in experiment_variants(cfg, exp):
            cells = [
                (bb, m)
                for bb in grid["backbones"]
                for m in grid["methods"]
                if methods[m].supports(bb)
                and not (methods[m].own_network and bb != home)
                and not (variant == VARIANT_FLIPPED and not methods[m].uses_maps)
            ]
            for ds in grid["datasets"]:
                for fold in folds(cfg, ds):
                    for bb, m in cells:
                        for seed in grid["seeds"]:
                            runs.add(RunSpec(ds, fold, bb, m, variant, int(seed)))
    return sorted(runs)


def rq1_fooled_runs(cfg: dict) -> list[RunSpec]:
    """The runs of the experiments marked `rq1_fooled: true`: DD RQ1's fooled models (the DD Fig.
    1 panels and the rq1 table's fooled rows; docs/decisions.md, "RQ1")."""
    marked = [e for e, g in cfg["experiments"].items() if g.get("rq1_fooled", False)]
    return expand_runs(cfg, experiments=marked) if marked else []


def rq1_runs(cfg: dict) -> list[RunSpec]:
    """The fooled runs (experiments marked `rq1_fooled: true`) and, for each (dataset, fold,
    backbone) they cover, the base runs of the unfooled counterpart method (`rq1.counterpart`,
    CYBORG by default) that the config makes: the one definition of which runs DD RQ1 compares."""
    fooled = rq1_fooled_runs(cfg)
    cells = {(r.dataset, r.fold, r.backbone) for r in fooled}
    other = cfg["rq1"]["counterpart"]
    counter = [
        r
        for r in expand_runs(cfg)
        if r.method == other
        and r.variant == VARIANT_BASE
        and (r.dataset, r.fold, r.backbone) in cells
    ]
    return sorted(set(fooled) | set(counter))


def rq1_settings(cfg: dict) -> dict:
    """The RQ1 block with the blur of SAGE's views (`methods.sage.sigma`, `kernel_size`) filled in."""
    sage = {**catalogue.get("sage").defaults, **cfg.get("methods", {}).get("sage", {})}
    return {**cfg["rq1"], "sigma": float(sage["sigma"]), "kernel_size": int(sage["kernel_size"])}


def home_backbone(backbones: list[str]) -> str:
    """The grid backbone under which a method with its own network (GazeGNN) runs, once:
    HOME_BACKBONE (resnet50) when listed, else the first listed."""
    return HOME_BACKBONE if HOME_BACKBONE in backbones else backbones[0]


def skipped_combinations(cfg: dict) -> list[str]:
    """Human-readable list of (method, backbone) pairs the grid skips, for logs and docs."""
    out = set()
    for grid in cfg["experiments"].values():
        home = home_backbone(grid["backbones"])
        for bb in grid["backbones"]:
            for m in grid["methods"]:
                info = catalogue.get(m)
                if not info.supports(bb):
                    out.add(f"{m} on {bb}: {info.unsupported_reason or 'unsupported'}")
                elif info.own_network and bb != home:
                    out.add(
                        f"{m} on {bb}: brings its own network ({info.own_network}), run once "
                        f"under {home}"
                    )
    return sorted(out)


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def resolve_run(cfg: dict, spec: RunSpec) -> dict:
    """The complete configuration of one run (logged as MLflow params, stored in run.json)."""
    if spec.dataset not in cfg["datasets"]:
        raise ConfigError(f"dataset {spec.dataset!r} is not defined in the config")
    if spec.fold not in folds(cfg, spec.dataset):
        raise ConfigError(
            f"fold {spec.fold!r} is not a fold of dataset {spec.dataset!r} "
            f"(folds: {', '.join(folds(cfg, spec.dataset))})"
        )
    # Only the parts a variant can override (flip_maps, methods.<m>.<key>: the schema's sweep key
    # pattern) and the parts copied into the run are copied: the whole config once per run cost
    # `snakemake -n` 0.4 s on config/paper.yaml (BENCHMARKS.md, "Planning the DAG").
    base = {
        "flip_maps": cfg.get("flip_maps", False),
        "methods": copy.deepcopy(cfg.get("methods", {})),
        "train": copy.deepcopy(cfg["train"]),
        "model": copy.deepcopy(cfg["model"]),
    }
    for key, value in variant_overrides(cfg, spec.variant).items():
        _set_dotted(base, key, value)
    info = catalogue.get(spec.method)
    params = {**info.defaults, **base["methods"].get(spec.method, {})}
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
        "flip_maps": bool(base["flip_maps"]),
        "train": base["train"],
        "model": base["model"],
        "data": {k: v for k, v in cfg["datasets"][spec.dataset].items() if k != "generator"},
    }
