"""`python -m salience dvc-stages --config CFG`: write the DVC pipeline (`dvc.yaml`) of one config.

DVC's templating (`vars` + `foreach`) cannot filter, but the two dataset sources need different
stages: a `generated` dataset's raw folder is made by a `generate` stage, while a `manifest`
dataset's raw folder is the user's own data, tracked with `dvc add` (or `dvc import`) and never
written by a stage. So the stage lists are computed here from the validated config and written
as plain `foreach` lists; the stage bodies are the same for every config. The `study` stage
starts with `dvc-stages --check`, so a config whose datasets changed after `dvc.yaml` was written
stops with one line instead of running outside DVC's view (docs/data.md, section 6).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from salience import config as sc
from salience import study
from salience.errors import ConfigError
from salience.io import atomic_path

log = logging.getLogger(__name__)

OWN_STAGES = ("generate", "prepare", "study")
_OWN_TOP = ("stages", "vars")
_HEADER = """\
# DVC pipeline of {config}, written by
#   python -m salience dvc-stages --config {config}
# Do not edit: change the config and run that command again (the `study` stage checks that this
# file still matches the config). docs/data.md, section 6, has the whole path with your own data.
#
#   dvc repro            # generate (generated datasets) → prepare → study (Snakemake) → tables
#   dvc metrics show     # headline numbers from {results}/aggregate/summary.json
#
# Generated datasets get a `generate` stage; a manifest dataset's raw folder (the manifest's
# folder) is your own data, tracked with `dvc add` or `dvc import`, and is a dependency of its
# `prepare` stage.
"""


def _rel(path: str | os.PathLike) -> str:
    """`path` as DVC should see it: relative to the repository root (the working directory) when
    it lies inside, POSIX separators."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return p.as_posix()
    return p.as_posix()


def raw_folders(cfg: dict) -> dict[str, str]:
    """Raw folder of each dataset (the `prepare` stage's data dependency): `data_dir/raw/NAME` for a
    generated dataset, the manifest's folder for a manifest dataset. Raises ConfigError when a
    manifest lies directly in the repository root (its folder would be the whole repository)."""
    out = {}
    for name, ds in cfg["datasets"].items():
        if ds["source"] == "generated":
            out[name] = _rel(sc.raw_dir(cfg, name))
            continue
        folder = _rel(Path(ds["manifest"]).parent)
        if folder in ("", "."):
            raise ConfigError(
                f"datasets.{name}.manifest: {ds['manifest']} lies in the repository root, so DVC "
                f"would track the whole repository as its data; move the dataset into its own "
                f"folder (e.g. {cfg['data_dir']}/raw/{name}/manifest.csv)"
            )
        out[name] = folder
    return out


def _inside(cfg: dict, key: str) -> str:
    """`cfg[key]` (data_dir or results_dir) relative to the repository; ConfigError when it lies
    outside, because DVC 3 refuses stage outputs outside its repository."""
    rel = _rel(cfg[key])
    if Path(rel).is_absolute() or rel.split("/")[0] == "..":
        raise ConfigError(
            f"{key}: {cfg[key]} lies outside the repository ({Path.cwd()}), where DVC cannot "
            f"keep stage outputs; use a path inside it (e.g. {key}: "
            f"{'data' if key == 'data_dir' else 'results'})"
        )
    return rel


def stages(cfg: dict, config_path: str, cores: int = 2) -> dict[str, Any]:
    """The `stages` mapping of dvc.yaml for a validated config read from `config_path`."""
    cfg_arg = _rel(config_path)
    data_dir, results = _inside(cfg, "data_dir"), _inside(cfg, "results_dir")
    raw = raw_folders(cfg)
    generated = [n for n, ds in cfg["datasets"].items() if ds["source"] == "generated"]
    prepared = [_rel(sc.prepared_dir(cfg, n)) for n in cfg["datasets"]]
    params = [{cfg_arg: ["datasets.${key}"]}]
    out: dict[str, Any] = {}
    if generated:
        out["generate"] = {
            "foreach": generated,
            "do": {
                "cmd": f"python -m salience generate --config {cfg_arg} --dataset ${{item}}",
                "deps": ["src/salience/data"],
                "params": [{cfg_arg: ["datasets.${item}"]}],
                "outs": [f"{data_dir}/raw/${{item}}"],
            },
        }
    out["prepare"] = {
        "foreach": raw,
        "do": {
            "cmd": f"python -m salience prepare --config {cfg_arg} --dataset ${{key}}",
            "deps": ["${item}", "src/salience/data"],
            "params": params,
            "outs": [f"{data_dir}/prepared/${{key}}"],
        },
    }
    snakemake = f"snakemake --cores {cores} --configfile {cfg_arg}"
    out["study"] = {
        "cmd": [
            f"python -m salience dvc-stages --config {cfg_arg} --cores {cores} --check",
            snakemake,
            f"{snakemake} --report {results}/report.html",
        ],
        "deps": [*prepared, "src/salience", "Snakefile", "workflow", cfg_arg],
        "outs": [
            f"{results}/tables",
            f"{results}/figures",
            f"{results}/rq1",
            {f"{results}/report.html": {"cache": False}},
        ],
        "metrics": [{f"{results}/aggregate/summary.json": {"cache": False}}],
    }
    return out


def render(cfg: dict, config_path: str, cores: int = 2) -> str:
    """dvc.yaml text: the header comment, then `stages` in a stable order."""
    body = yaml.safe_dump(
        {"stages": stages(cfg, config_path, cores)},
        sort_keys=False,
        default_flow_style=False,
        width=100,
        allow_unicode=True,
    )
    header = _HEADER.format(config=_rel(config_path), results=_rel(cfg["results_dir"]))
    return header + body


def _read(out: Path) -> dict | None:
    if not out.is_file():
        return None
    try:
        with open(out) as fh:
            doc = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{out}: not valid YAML ({exc}); fix or remove it") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{out}: top level is not a mapping; fix or remove it")
    return doc


def _foreign(doc: dict) -> list[str]:
    """Top-level keys and stages of an existing dvc.yaml that this command did not write."""
    keys = [k for k in doc if k not in _OWN_TOP]
    keys += [f"stages.{s}" for s in (doc.get("stages") or {}) if s not in OWN_STAGES]
    return keys


def write(config_path: str, out: str | os.PathLike = "dvc.yaml", cores: int = 2) -> Path:
    """Write `out` (atomically) for the config at `config_path`. An existing file is replaced only
    when it holds nothing but this command's stages; anything else a user added is kept and the
    command stops with one line (ConfigError)."""
    cfg = study.load_config(config_path)
    text = render(cfg, config_path, cores)
    out = Path(out)
    doc = _read(out)
    if doc is not None and _foreign(doc):
        raise ConfigError(
            f"{out} holds {', '.join(_foreign(doc))}, which `dvc-stages` did not write and would "
            f"overwrite; move them to a dvc.yaml in a subfolder (or remove them), then run again"
        )
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    for name, folder in raw_folders(cfg).items():
        if cfg["datasets"][name]["source"] != "manifest":
            continue
        if Path(folder).is_absolute() or folder.split("/")[0] == "..":
            log.warning(
                "%s (dataset %s) lies outside the repository: DVC hashes it but cannot push or pull "
                "it; `dvc import-url %s %s/raw/%s` and point the manifest there (docs/data.md, "
                "section 6)",
                folder,
                name,
                folder,
                _rel(cfg["data_dir"]),
                name,
            )
        elif not _tracked(Path(folder)):
            log.warning(
                "%s (dataset %s) is not tracked by DVC: `dvc add %s` (docs/data.md, section 6)",
                folder,
                name,
                folder,
            )
    return out


def _tracked(folder: Path) -> bool:
    """Whether `folder` or a folder above it has a `.dvc` file next to it (dvc add / import)."""
    return any(p.name and p.with_name(p.name + ".dvc").is_file() for p in (folder, *folder.parents))


def check(config_path: str, out: str | os.PathLike = "dvc.yaml", cores: int = 2) -> None:
    """Raise ConfigError when `out`'s generate/prepare/study stages differ from the config's."""
    cfg = study.load_config(config_path)
    want = stages(cfg, config_path, cores)
    doc = _read(Path(out)) or {}
    have = {k: v for k, v in (doc.get("stages") or {}).items() if k in OWN_STAGES}
    if have != want:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise ConfigError(
            f"{out} does not match {_rel(config_path)} (stage(s) {', '.join(diff)} differ: "
            f"datasets added, removed or moved?); run `python -m salience dvc-stages --config "
            f"{_rel(config_path)} --cores {cores}`, then `dvc repro` again"
        )
