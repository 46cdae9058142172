"""The embedded benchmark: generated tasks mirroring the papers' (docs/benchmark.md): the binary
iris, face and chest tasks, and gaze3, a 3-class chest task (normal / chf / pneumonia, issue 12)
whose manifest labels are class names (its dataset declares `classes: [normal, chf, pneumonia]`).

`generate(task, out, **knobs)` writes, atomically (salience.io.atomic_dir):
  out/manifest.csv        split,label,image,saliency,subset (paths relative to out/)
  out/images/<split>/*.png, out/maps/<split>/*.png (greyscale human-like maps, every row)
  out/cues.csv            image,cue — where the planted shortcut was drawn (for analysis only)
  out/generator.json      task and knob values
Same seed and knobs → byte-identical files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from salience.data import check_replaceable
from salience.data.generate import chest, face, gaze3, iris
from salience.data.generate.common import KNOB_NAMES, Knobs, Task, make_knobs, write_dataset
from salience.errors import ConfigError
from salience.io import atomic_dir

log = logging.getLogger(__name__)

TASKS: dict[str, Task] = {"iris": iris, "face": face, "chest": chest, "gaze3": gaze3}  # type: ignore[dict-item]

__all__ = ["TASKS", "KNOB_NAMES", "Knobs", "knobs_for", "generate", "generate_from_config"]


def knobs_for(task: str, **overrides: Any) -> Knobs:
    """The knobs of `task`: common defaults, then the task's defaults, then `overrides`."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r} for the generator (choose {', '.join(TASKS)})")
    mod = TASKS[task]
    base = {**Knobs().to_json(), **mod.DEFAULTS}
    return make_knobs(base, overrides, mod.SUBSETS)


def generate(task: str, out: str | os.PathLike, **overrides: Any) -> Path:
    """Generate one task into `out` (replaced atomically); returns the manifest path."""
    k = knobs_for(task, **overrides)
    out = Path(out)
    check_replaceable(out, "generator.json", "a generated dataset", generated_files)
    with atomic_dir(out) as tmp:
        # gaze3 plans three classes and writes class names (its own writer); the rest are binary
        rows = (
            gaze3.write_dataset(k, tmp) if task == "gaze3" else write_dataset(TASKS[task], k, tmp)
        )
    log.info(
        "generated %s: %d images (seed %d, %d px) in %s", task, len(rows), k.seed, k.image_size, out
    )
    return out / "manifest.csv"


def generated_files(folder: Path, info: dict) -> list[str] | None:
    """The files of an earlier generated dataset in `folder`, from its generator.json and
    manifest.csv (None: the generator.json was not written by `generate`)."""
    import csv

    if info.get("task") not in TASKS or not isinstance(info.get("knobs"), dict):
        return None
    files = ["manifest.csv", "cues.csv"]
    try:
        with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                files += [row.get("image") or "", row.get("saliency") or ""]
    except (OSError, ValueError, csv.Error):
        pass  # its images are then foreign files: refused, never deleted
    return [f for f in files if f]


def generate_from_config(
    cfg: dict, dataset: str, out: str | os.PathLike | None = None, **overrides: Any
) -> Path:
    """Generate `datasets.<dataset>` of a loaded config (default out: config raw_dir); `overrides`
    replace single knobs of its generator block."""
    from salience.config import raw_dir

    if dataset not in cfg["datasets"]:
        raise ConfigError(
            f"dataset {dataset!r} is not defined in the config (defined: {', '.join(cfg['datasets'])})"
        )
    ds = cfg["datasets"][dataset]
    if ds["source"] != "generated" or not ds.get("generator"):
        raise ConfigError(
            f"datasets.{dataset}: source is {ds['source']!r}, not 'generated' with a generator block; "
            f"nothing to generate (prepare it from its manifest instead)"
        )
    if ds["task"] not in TASKS:
        raise ConfigError(
            f"datasets.{dataset}.task {ds['task']!r} cannot be generated (choose {', '.join(TASKS)})"
        )
    return generate(ds["task"], out or raw_dir(cfg, dataset), **{**ds["generator"], **overrides})
