"""Cell definitions and caption notes shared by the tables (salience.reporting.tables): how a
face run's generators make one cell value, which variant of a method a table shows, and which
cells hold runs with constant scores. Pure functions of the tidy run frame (aggregate)."""

from __future__ import annotations

import pandas as pd

# How each paper defines CYBORG (docs/decisions.md): SAGE §5.2 compares against the official code
# (CAM of the predicted class), DD §4 defines its Baseline with the CAM of the true class.
CAM_CLASS_TEXT = {
    "predicted": "CYBORG uses the predicted-class CAM (official CYBORG code, as in SAGE)",
    "true": "CYBORG uses the true-class CAM (DD's Baseline)",
}


CAM_LAYER_TEXT = {
    "pooled": "CAM losses read the feature map the classifier pools (model.cam_layer: pooled)",
    "cyborg_legacy": "CAM losses read the official CYBORG code's hooked layer "
    "(model.cam_layer: cyborg_legacy)",
}


def method_notes(units: pd.DataFrame) -> str:
    """Caption sentences naming the variant of a method whose definition differs between the
    papers or code bases: CYBORG's CAM class (runs.csv `cam_class`) and the layer every CAM loss
    reads (`cam_layer`, for rows with a CAM loss); "" when no such row."""
    if "cam_class" not in units:
        return ""
    out = ""
    kinds = sorted(set(units.loc[units["method"] == "cyborg", "cam_class"].astype(str)) - {""})
    if len(kinds) == 1:
        out += f" {CAM_CLASS_TEXT.get(kinds[0], 'CYBORG uses the ' + kinds[0] + '-class CAM')}."
    elif len(kinds) > 1:
        out += " CYBORG runs mix " + " and ".join(f"{k}-class" for k in kinds) + " CAMs."
    if "cam_layer" in units:
        cam_rows = units["cam_class"].astype(str) != ""
        layers = sorted(set(units.loc[cam_rows, "cam_layer"].astype(str)) - {""})
        if len(layers) == 1:
            out += f" {CAM_LAYER_TEXT.get(layers[0], 'CAM layer: ' + layers[0])}."
        elif len(layers) > 1:
            out += " CAM losses read different layers across runs (" + ", ".join(layers) + ")."
    return out


def gaze_note(units: pd.DataFrame) -> str:
    """Caption sentence saying which maps Gaze-GNN's runs in a table read at test time (it reads
    one per image as input, docs/decisions.md "gazegnn"); "" when the table has no such run."""
    if "test_maps" not in units or "method" not in units:
        return ""
    fed = set(units.loc[units["method"] == "gazegnn", "test_maps"].astype(str))
    if not fed:
        return ""
    net = " Gaze-GNN is its own Pyramid ViG network;"
    if fed == {"provided"}:
        return f"{net} it read each test image's own saliency map at test time."
    if fed == {"uniform"}:
        return f"{net} it read a constant map at test time (no test-image saliency)."
    return f"{net} it read test-image saliency maps in some runs and a constant map in others."


def constant_cells(units: pd.DataFrame, delta: tuple | None = None) -> set[tuple[str, str]]:
    """(row, col) cells holding a run whose scores were constant over a split (runs.csv
    `constant_scores`: its AUROC of 0.5 comes from ties); a paired-difference column inherits
    the marks of the two columns it compares."""
    if "constant_scores" not in units or units.empty:
        return set()
    flags = units.groupby(["row", "col"])["constant_scores"].any()
    out = {k for k, v in flags.items() if bool(v)}
    if delta is not None:
        out |= {(r, delta[2]) for r, c in list(out) if c in delta[:2]}
    return out


GENERATOR_MEAN = "mean over generators"  # `subset` of a face run's overall unit


def generator_mean(g: pd.DataFrame) -> pd.DataFrame:
    """One unit per face run: the mean over its generators of the per-generator AUROC (DD Table 2
    = mean of Table 4's columns, whatever the generators' test-set sizes); a run without generator
    subsets keeps its pooled "all" row."""
    full = g[(g["fold"] == "all") & (g["subset"] == "all")]
    gens = g[(g["fold"] == "all") & (g["subset"] != "all")]
    if gens.empty:
        return full
    cols = [c for c in ("value", "auroc", "auroc_sigmoid") if c in gens]
    per_run = gens.groupby("run_id")[cols].mean().add_suffix("_gen")
    out = full.merge(per_run, left_on="run_id", right_index=True, how="left")
    has = out[cols[0] + "_gen"].notna()
    for c in cols:  # the metric columns too, so figures plot what the tables print
        out.loc[has, c] = out.loc[has, c + "_gen"]
    out.loc[has, "subset"] = GENERATOR_MEAN
    if "constant_scores" in gens:  # a run is marked once, whatever subset showed it
        const = gens.groupby("run_id")["constant_scores"].any()
        out["constant_scores"] = out["constant_scores"].astype(bool) | out["run_id"].map(
            const
        ).fillna(False).astype(bool)
    return out.drop(columns=[c + "_gen" for c in cols])


def overall_note(u: pd.DataFrame) -> str:
    """Caption sentence on the cell definitions that are not a pooled AUROC."""
    notes = []
    if (u["subset"] == GENERATOR_MEAN).any():
        notes.append("face cells: mean over generators of the per-generator AUROC")
    if (u["fold"] != "all").any():
        notes.append("leave-one-out cells: mean over folds of the held-out attack type's AUROC")
    return (" " + "; ".join(notes) + ".") if notes else ""
