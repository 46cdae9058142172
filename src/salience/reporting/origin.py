"""Backbone initialisation of the runs in a table: the caption sentence, and the refusal to mix.

A run's `weights_origin` (run.json → runs.csv, models/weights.py) is "random", "imagenet:<file>"
(the pinned torchvision ImageNet file), "file:<name>" (a state-dict path) or empty (not recorded).
Every table caption states the origin of its runs; a table whose runs mix kinds (e.g. random-init
ResNet-50 runs next to ImageNet ones, what a missing weights file used to produce silently) is
refused unless `allow_mixed` (`tables --allow-mixed-weights`, `report.allow_mixed_weights`).
"""

from __future__ import annotations

import pandas as pd

from salience.errors import SalienceError
from salience.reporting import style as S

KIND_NAMES = {
    "imagenet": "ImageNet",
    "random": "random init",
    "file": "weights file",
    "unrecorded": "not recorded",
}


def origin_kind(origin: object) -> str:
    """Kind of one `weights_origin` value: "imagenet", "random", "file" or "unrecorded"."""
    text = "" if origin is None or pd.isna(origin) else str(origin)
    kind = text.split(":", 1)[0]
    return kind if kind in ("imagenet", "random", "file") else "unrecorded"


def _runs_by_kind(units: pd.DataFrame) -> dict[str, list[str]]:
    """kind → sorted run ids of `units` (rows of runs; one run may have several rows)."""
    origins = units.get("weights_origin", pd.Series("", index=units.index))
    runs = pd.DataFrame({"run_id": units["run_id"], "kind": origins.map(origin_kind)})
    runs = runs.drop_duplicates()
    return {k: sorted(g["run_id"]) for k, g in runs.groupby("kind")}


def _n_runs(runs: list[str]) -> str:
    return f"{len(runs)} run" + ("s" if len(runs) != 1 else "")


def caption_note(units: pd.DataFrame) -> str:
    """One caption sentence naming the backbone initialisation of the runs in `units`."""
    kinds = _runs_by_kind(units)
    if len(kinds) > 1:
        parts = [f"{KIND_NAMES[k]} ({_n_runs(r)})" for k, r in sorted(kinds.items())]
        return "Mixed backbone initialisation: " + ", ".join(parts) + "."
    kind = next(iter(kinds), "unrecorded")
    files = sorted(
        {str(o).split(":", 1)[1] for o in units.get("weights_origin", []) if ":" in str(o)}
    )
    if kind == "imagenet":
        return S.tex(
            f"Backbones initialised from ImageNet (torchvision IMAGENET1K_V1 files {', '.join(files)})."
        )
    if kind == "file":
        return S.tex(f"Backbones initialised from the weights file(s) {', '.join(files)}.")
    if kind == "random":
        return "Backbones randomly initialised (no pretrained weights)."
    return "Backbone initialisation not recorded."


def check_single_origin(tid: str, units: pd.DataFrame, allow_mixed: bool = False) -> None:
    """Raise a one-line SalienceError when the runs of table `tid` mix initialisation kinds."""
    kinds = _runs_by_kind(units)
    if len(kinds) <= 1 or allow_mixed:
        return
    parts = [f"{KIND_NAMES[k]}: {_n_runs(r)} (e.g. {r[0]})" for k, r in sorted(kinds.items())]
    raise SalienceError(
        f"table {tid}: its runs mix backbone initialisations ({'; '.join(parts)}); rerun them "
        f"with one model.weights (`python -m salience weights fetch` for the ImageNet files), or "
        f"allow it with `tables --allow-mixed-weights` (report.allow_mixed_weights: true)"
    )
