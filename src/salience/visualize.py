"""DD Fig. 1 panels: image, true-class CAM, false-class CAM and Difference Salience per sample.

Each CAM is min-max normalised on its own (the paper's colour scale is "separate for each CAM"),
upsampled bilinearly to the image and drawn over it with a red-to-blue map (jet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from salience.cam import minmax
from salience.data.loader import denormalize, to_tensor_images
from salience.data.prepared import PreparedDataset
from salience.errors import ConfigError
from salience.io import atomic_path
from salience.methods.base import Method


def pick_samples(ds: PreparedDataset, split: str, per_class: int, seed: int = 0) -> np.ndarray:
    """`per_class` rows of each label from `split`, chosen reproducibly."""
    rng = np.random.default_rng(seed)
    out = []
    for label in (0, 1):
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


def visualize_checkpoint(
    model_path: Path,
    prepared: Path,
    out: Path,
    samples: int = 4,
    split: str = "test",
    title: str | None = None,
) -> Path:
    from salience.evaluation.evaluate import load_trained

    model, method, meta = load_trained(model_path)
    ds = PreparedDataset(prepared)
    rows = pick_samples(ds, split, samples)
    labels = ds.index["label"].to_numpy()[rows]
    p = panels(model, method, np.asarray(ds.images[rows]), labels)
    return draw(p, labels, title or str(meta.get("run_id", model_path)), Path(out))
