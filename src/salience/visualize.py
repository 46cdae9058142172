"""DD Fig. 1 panels: image, true-class CAM, false-class CAM and Difference Salience per sample.

Each CAM is min-max normalised on its own (the paper's colour scale is "separate for each CAM"),
upsampled bilinearly to the image and drawn over it with a red-to-blue map (jet).

K > 2 classes (issue 12; docs/decisions.md "Multi-class Difference, Per-class and Contrast
Salience"): a sample has K − 1 false classes, so the panels show the true class y against its
strongest competitor s = argmax_{j≠y} logit_j (the class the decision must beat, the `strongest`
choice of `salience.losses.multiclass`): image, human map, cam_y, cam_s and norm(cam_y − cam_s),
with the class names (prepared meta.json `classes`) in the titles. On request (`pairs`), one panel
per ordered class pair (i, j), i ≠ j, K·(K − 1) in all: norm(cam_i − cam_j) on samples of class i.
Binary models keep the four-column figure above, unchanged.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from salience.cam import minmax
from salience.data.loader import denormalize, to_tensor_images
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError
from salience.io import atomic_path
from salience.losses.multiclass import strongest_false_class, true_cam
from salience.methods.base import Method


def pick_samples(
    ds: PreparedDataset, split: str, per_class: int, seed: int = 0, num_classes: int = 2
) -> np.ndarray:
    """`per_class` rows of each label 0 … num_classes − 1 from `split`, chosen reproducibly."""
    rng = np.random.default_rng(seed)
    out = []
    for label in range(num_classes):
        rows = ds.rows(split)
        rows = rows[ds.index["label"].to_numpy()[rows] == label]
        out.extend(rng.choice(rows, size=min(per_class, len(rows)), replace=False).tolist())
    return np.sort(np.asarray(out, dtype=np.int64))


@torch.no_grad()
def panels(
    model: torch.nn.Module, method: Method, images_u8: np.ndarray, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """Arrays (N×S×S) of the true CAM, false CAM and Difference Salience, upsampled to the image."""
    if not method.cam_head:
        raise ConfigError(
            f"method {method.name} has no class activation maps; visualise a CAM-head model (e.g. fooling, cyborg)"
        )
    model.eval()
    x = to_tensor_images(images_u8)
    logits, (t, f) = method.forward_eval(model, {"image": x, "label": torch.as_tensor(labels)})
    size = images_u8.shape[1:3]

    def up(m: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            m.unsqueeze(1), size=size, mode="bilinear", align_corners=False
        ).squeeze(1)

    return {
        "image": denormalize(x).permute(0, 2, 3, 1).numpy(),
        "true": up(minmax(t)).numpy(),
        "false": up(minmax(f)).numpy(),
        "difference": up(minmax(t - f)).numpy(),
        "p1": torch.softmax(logits, 1)[:, 1].numpy(),
    }


def draw(p: dict[str, np.ndarray], labels: np.ndarray, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [
        ("image", "Image"),
        ("true", "True-class CAM"),
        ("false", "False-class CAM"),
        ("difference", "Difference Salience"),
    ]
    n = len(labels)
    fig, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n), squeeze=False)
    for i in range(n):
        for j, (key, name) in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(p["image"][i])
            if key != "image":
                ax.imshow(p[key][i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"y={labels[i]}  p1={p['p1'][i]:.2f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def class_names(ds: PreparedDataset, num_classes: int) -> list[str]:
    """The class names of label indices 0 … K − 1: `PreparedDataset.classes` (meta.json `classes`
    of K > 2 datasets, docs/data.md), else "0" … "K−1" when that list has another length."""
    names = ds.classes
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def _up(m: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """B×g×g → B×S×S, bilinear (as the binary panels)."""
    return F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[
        :, 0
    ].numpy()


@torch.no_grad()
def _all_cams(
    model: torch.nn.Module, method: Method, images_u8: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ImageNet-normalised images B×3×S×S, logits B×K, CAMs B×K×g×g) of one evaluation pass."""
    model.eval()
    x = to_tensor_images(images_u8)
    logits, cams = method.forward_eval_all(model, {"image": x})
    if cams is None:
        raise ConfigError(
            f"method {method.name} has no class activation maps; visualise a CAM-head model (e.g. fooling, cyborg)"
        )
    return x, logits, cams


def competitor_panels(
    model: torch.nn.Module,
    method: Method,
    images_u8: np.ndarray,
    maps_u8: np.ndarray,
    labels: np.ndarray,
) -> dict[str, np.ndarray]:
    """K-class DD Fig. 1 arrays: images (N×S×S×3 in [0, 1]), the human map (N×S×S in [0, 1]), the
    true-class CAM t, the CAM of the strongest competitor s = argmax_{j≠y} logit_j and Difference
    Salience norm(t − s) (each N×S×S, min-max per map, upsampled), `competitor` (N class indices)
    and `probs` (N×K softmax). ConfigError for a model without a CAM head."""
    x, logits, cams = _all_cams(model, method, images_u8)
    y = torch.as_tensor(labels, dtype=torch.long)
    s = strongest_false_class(logits, y)
    t, f = true_cam(cams, y), true_cam(cams, s)
    size = images_u8.shape[1:3]
    return {
        "image": denormalize(x).permute(0, 2, 3, 1).numpy(),
        "human": np.asarray(maps_u8, dtype=np.float32) / 255.0,
        "true": _up(minmax(t), size),
        "competitor": _up(minmax(f), size),
        "difference": _up(minmax(t - f), size),
        "competitor_class": s.numpy(),
        "probs": torch.softmax(logits, 1).numpy(),
    }


@dataclass
class PairPanel:
    """norm(cam_i − cam_j) (N×S×S, upsampled) on the `rows` (indices into the picked samples) of
    class i."""

    i: int
    j: int
    rows: np.ndarray
    maps: np.ndarray


def pair_panels(
    model: torch.nn.Module, method: Method, images_u8: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, list[PairPanel]]:
    """Images (N×S×S×3 in [0, 1]) and one `PairPanel` per ordered class pair (i, j), i ≠ j, in
    the order (0, 1), (0, 2), … (K−1, K−2): K·(K − 1) panels. norm(cam_i − cam_j) and
    norm(cam_j − cam_i) are drawn on different samples (of class i, of class j), so both orders
    are shown; for class i they are Difference Salience with j as the false class (DD Eq. 1)."""
    x, _, cams = _all_cams(model, method, images_u8)
    size = images_u8.shape[1:3]
    out = []
    for i in range(k):
        rows = np.flatnonzero(labels == i)
        for j in range(k):
            if j != i:
                d = cams[rows, i] - cams[rows, j]
                out.append(PairPanel(i, j, rows, _up(minmax(d), size)))
    return denormalize(x).permute(0, 2, 3, 1).numpy(), out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cell(ax, image: np.ndarray, overlay: np.ndarray | None, title: str) -> None:
    """One panel: the image, a [0, 1] map over it (jet, as the binary panels), a small title."""
    ax.imshow(image)
    if overlay is not None:
        ax.imshow(overlay, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(textwrap.fill(title, 28), fontsize=7)  # long class names wrap, not overlap


def _save(fig, title: str, path: Path) -> Path:
    """Title the K-class figure and write it. The title sits a fixed 0.12 in below the top edge
    and tight_layout keeps the panels (and their titles) under a 0.45 in band: a fraction of the
    height, as before, left 12 rows' panel titles running into it (the binary `draw` is kept byte
    for byte, docs/decisions.md "Difference Salience figures for K > 2")."""
    plt = _pyplot()
    height = fig.get_figheight()
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def draw_competitor(
    p: dict[str, np.ndarray],
    labels: np.ndarray,
    has_map: np.ndarray,
    names: list[str],
    title: str,
    path: Path,
) -> Path:
    """K-class DD Fig. 1 (arrays of `competitor_panels`): one row per sample, class names in the
    titles (true class y, strongest competitor s)."""
    plt = _pyplot()
    n = len(labels)
    fig, axes = plt.subplots(n, 5, figsize=(10, 2.3 * n), squeeze=False)
    for r in range(n):
        y, s = names[int(labels[r])], names[int(p["competitor_class"][r])]
        row = axes[r]
        _cell(row[0], p["image"][r], None, "Image")
        _cell(row[1], p["image"][r], p["human"][r], "Human map" if has_map[r] else "no human map")
        _cell(row[2], p["image"][r], p["true"][r], f"CAM {y} (true)")
        _cell(row[3], p["image"][r], p["competitor"][r], f"CAM {s} (competitor)")
        _cell(row[4], p["image"][r], p["difference"][r], f"Difference {y} − {s}")
        prob = p["probs"][r]
        row[0].set_ylabel(
            f"y={y}  p={prob[int(labels[r])]:.2f}\np({s})={prob[int(p['competitor_class'][r])]:.2f}",
            fontsize=7,
        )
    return _save(fig, f"{title}: true class vs strongest competitor", path)


def draw_pairs(
    images: np.ndarray, pairs: list[PairPanel], names: list[str], title: str, path: Path
) -> Path:
    """One row (panel) per ordered class pair (i, j): norm(cam_i − cam_j) on the samples of class i."""
    plt = _pyplot()
    cols = max([len(pp.rows) for pp in pairs] + [1])
    fig, axes = plt.subplots(
        len(pairs), cols, figsize=(max(2 * cols, 6), 2.2 * len(pairs)), squeeze=False
    )
    for r, pp in enumerate(pairs):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(pp.rows):
                ax.axis("off")
                continue
            _cell(ax, images[pp.rows[c]], pp.maps[c], f"{names[pp.i]} − {names[pp.j]}")
        axes[r, 0].set_ylabel(f"y={names[pp.i]}\nnorm(cam_{pp.i} − cam_{pp.j})", fontsize=7)
    return _save(fig, f"{title}: Difference Salience per class pair", path)


@dataclass
class Visualized:
    """What `visualize_checkpoint` drew: the PNG, the picked dataset `rows` and their `labels`, the
    class `names`, and for K > 2 each sample's strongest competitor (`competitor`, class indices,
    None for binary or `pairs`) or the drawn class `pairs` ((i, j) in row order)."""

    path: Path
    rows: np.ndarray
    labels: np.ndarray
    names: list[str]
    competitor: np.ndarray | None = None
    pairs: list[tuple[int, int]] = field(default_factory=list)


def visualize_checkpoint(
    model_path: Path,
    prepared: Path,
    out: Path,
    samples: int = 4,
    split: str = "test",
    title: str | None = None,
    pairs: bool = False,
) -> Visualized:
    """Draw a model.pt's panels on `samples` rows per class of `split` into the PNG `out`: DD Fig. 1
    (binary: unchanged four columns; K > 2: true class vs its strongest competitor), or with
    `pairs` one panel per ordered class pair (K·(K − 1) rows). K is model.pt's meta `num_classes`
    (2 when absent). ConfigError when the data hold a label ≥ K or the model has no CAM head."""
    from salience.evaluation.evaluate import check_model_classes, load_trained

    model, method, meta = load_trained(model_path)
    k = int(meta.get("num_classes", 2))
    ds = PreparedDataset(prepared)
    if len(ds) and int(ds.labels.max()) >= k:
        raise ConfigError(
            f"{prepared}: holds label {int(ds.labels.max())}, but {model_path} has {k} classes; "
            "visualise the model with the prepared data it was trained on"
        )
    check_model_classes(
        ds, k, Path(model_path), "visualise it"
    )  # e.g. a 3-class model on binary data
    rows = pick_samples(ds, split, samples, num_classes=k)
    labels = ds.index["label"].to_numpy()[rows]
    names, title = class_names(ds, k), title or str(meta.get("run_id", model_path))
    images = np.asarray(ds.images[rows])
    res = Visualized(Path(out), rows, labels, names)
    if pairs:
        imgs, pp = pair_panels(model, method, images, labels, k)
        res.pairs = [(p.i, p.j) for p in pp]
        draw_pairs(imgs, pp, names, title, res.path)
    elif k == 2:
        draw(panels(model, method, images, labels), labels, title, res.path)
    else:
        p = competitor_panels(model, method, images, np.asarray(ds.maps[rows]), labels)
        res.competitor = p["competitor_class"]
        has_map = ds.index["has_map"].to_numpy()[rows]
        draw_competitor(p, labels, has_map, names, title, res.path)
    return res
