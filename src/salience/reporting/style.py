"""Presentation constants shared by tables and figures: display names, paper orders, rcParams.

Orders and names follow the papers' tables: DD Tables 2–4 (Chest, Iris, Face; Baseline = CYBORG)
and SAGE Tables 1–5 (Iris, Face, Chest; Baseline = Xent). Names not listed here are shown as they
are and sorted after the known ones, so new methods, backbones or subsets never break a table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from matplotlib.figure import Figure

from salience.io import atomic_path
from salience.methods import catalogue

# Method keys (registry names) → labels as printed in the papers: each method class's `label`,
# read from the torch-free method catalogue (the registry is the one list of methods).
METHOD_NAMES: dict[str, str] = {n: catalogue.label(n) for n in catalogue.names()}
# DD Tables 2–4 print CYBORG as "Baseline" (SAGE Tables 1–3 as "CYBORG", its class label)
DD_NAMES: dict[str, str] = {**METHOD_NAMES, "cyborg": "Baseline (CYBORG)"}

DD_METHODS = ["cyborg", "difference", "perclass", "contrast"]  # DD Tables 2–4 row order
# SAGE Table 1 row order (xent, CYBORG, Unet+Gaze, Gaze-GNN, MENTOR, GG-CAM, Boyd, SAGE)
SAGE_METHODS = ["xent", "cyborg", "unet_gaze", "gazegnn", "mentor", "ggcam", "boyd_blur", "sage"]
# every registered method: the papers' rows first, then the others (fooling, new ones) by name
ALL_METHODS = SAGE_METHODS + [m for m in DD_METHODS if m not in SAGE_METHODS]
ALL_METHODS += [m for m in catalogue.names() if m not in ALL_METHODS]
# SAGE Table 2's rows: GG-CAM and Gaze-GNN appear only in Table 1, CYBORG has no Swin-T row.
SAGE_T2_METHODS = ["xent", "cyborg", "unet_gaze", "mentor", "boyd_blur", "sage"]
SAGE_T2_ABSENT = {("cyborg", "swin_t")}  # (method, backbone) pairs the paper does not print

BACKBONE_NAMES: dict[str, str] = {
    "resnet50": "ResNet50",
    "densenet121": "DenseNet-121",
    "efficientnet_b7": "EfficientNet-b7",
    "swin_t": "Swin-T",
    "resnet18": "ResNet18",
    "smallcnn": "SmallCNN",
}
BACKBONE_ORDER = list(BACKBONE_NAMES)  # SAGE Table 2 order, then our CPU stand-in

TASK_NAMES = {"iris": "Iris", "face": "Face", "chest": "Chest", "custom": "Custom"}
DD_TASK_ORDER = ["chest", "iris", "face", "custom"]  # DD Table 2
SAGE_TASK_ORDER = ["iris", "face", "chest", "custom"]  # SAGE Tables 1–5

# Metric keys → TeX for captions (AUROC on softmax p1; CVRL test scripts use sigmoid(logit1)).
METRIC_TEX = {"auroc": "AUROC", "auroc_sigmoid": r"AUROC of $\sigma(\mathrm{logit}_1)$"}
METRIC_TEX["cam_agreement"] = "CAM--human-map agreement"
METRIC_LABEL = {"auroc": "AUROC", "auroc_sigmoid": "AUROC (sigmoid)", "cam_agreement": "agreement"}

# Subsets (iris attack types, face generators), keyed by lower-case alphanumerics of our names.
SUBSET_NAMES: dict[str, str] = {
    # DD Table 3 (alphabetical in the paper)
    "artificial": "Artificial",
    "contactsprint": "Contacts+Print",
    "printcontacts": "Contacts+Print",
    "printoutscontacts": "Contacts+Print",
    "diseased": "Diseased",
    "postmortem": "Post-mortem",
    "printouts": "Printouts",
    "printout": "Printouts",
    "synthetic": "Synthetics",
    "synthetics": "Synthetics",
    "texturedcontacts": "Textured Contacts",
    "textured": "Textured Contacts",
    # DD Table 4
    "stargan": "StarGAN",
    "starganv2": "StarGAN",
    "stargan2": "StarGAN",
    "progan": "ProGAN",
    "stylegan": "StyleGAN",
    "stylegan2": "StyleGAN2",
    "stylegan3": "StyleGAN3",
    "stylegan2ada": "StyleGAN2-ADA",
    "styleganada": "StyleGAN2-ADA",
}
SUBSET_ORDER = list(dict.fromkeys(SUBSET_NAMES.values()))

# rcParams applied (through matplotlib.rc_context) to every figure of the package.
RC: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def method_name(key: str, dd: bool = False) -> str:
    return (DD_NAMES if dd else METHOD_NAMES).get(key, key)


def backbone_name(key: str) -> str:
    return BACKBONE_NAMES.get(key, key)


def subset_name(key: str) -> str:
    return SUBSET_NAMES.get(_norm(key), key)


def ordered(present: Iterable[str], order: list[str], key=lambda x: x) -> list[str]:
    """`present` (deduplicated) in `order`; unknown items last, alphabetically."""
    rank = {k: i for i, k in enumerate(order)}
    items = list(dict.fromkeys(present))
    return sorted(items, key=lambda x: (rank.get(key(x), len(rank)), str(x)))


def ordered_subsets(present: Iterable[str]) -> list[str]:
    return ordered(present, SUBSET_ORDER, key=subset_name)


# ---- LaTeX (booktabs) ---------------------------------------------------------------------------
DASH = "---"  # LaTeX em dash: an undefined std (n < 2) or an empty cell
# A cell with a run whose scores were constant over a split (metrics.json `constant_scores`).
CONSTANT_MARK = r"$^\dagger$"
CONSTANT_NOTE = (
    r" $^\dagger$: at least one run of the cell gave every image of its test or validation split "
    "the same score (constant scores), so its AUROC of 0.5 comes from ties, not from a ranking."
)
_TEX = {c: "\\" + c for c in "&%$#_{}"}
_TEX |= {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_TABLE = str.maketrans(_TEX)


def tex(s: object) -> str:
    """Escape plain text for LaTeX."""
    return str(s).translate(_TEX_TABLE)


def metric_tex(key: str) -> str:
    return METRIC_TEX.get(key, tex(key))


def cell(mean: float, std: float | None, plain: bool = False) -> str:
    """ "0.912 $\\pm$ 0.013" as the papers print it; `plain` = bare mean (SAGE Table 3's Δ)."""
    if plain:
        return f"{mean:.3f}".replace("-", "$-$")
    return f"{mean:.3f} $\\pm$ " + (DASH if std is None else f"{std:.3f}")


def render_latex(tid: str, caption: str, stub: list[str], cols: list[str], body: list) -> str:
    """booktabs table. `caption`, headers and cells are TeX; row labels are plain text.
    body = [(row labels, cells)]; with two stub columns a \\midrule separates first-label groups."""
    spec = "l" * len(stub) + "c" * len(cols)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small" if len(cols) > 4 else ""]
    lines += [rf"\caption{{{caption}}}", rf"\label{{tab:{tid}}}", rf"\begin{{tabular}}{{{spec}}}"]
    lines += [r"\toprule", " & ".join(stub + cols) + r" \\", r"\midrule"]
    prev = None
    for labels, cells in body:
        shown = [tex(x) for x in labels]
        if len(stub) > 1 and prev is not None:
            if labels[0] == prev:
                shown[0] = ""
            else:
                lines.append(r"\midrule")
        prev = labels[0]
        lines.append(" & ".join(shown + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(x for x in lines if x) + "\n"


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Write `fig` as PNG atomically (temporary sibling, then rename) and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # the temporary name has no .png suffix, so the format must be explicit
        fig.savefig(tmp, format="png", dpi=dpi or RC["savefig.dpi"], bbox_inches="tight")
    return path
