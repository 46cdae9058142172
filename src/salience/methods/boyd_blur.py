"""Boyd et al. 2022, "Human-aided saliency maps improve generalization of deep learning" (WACV 2022;
arXiv 2105.03492), the SAGE paper's "Boyd et al." baseline: cross-entropy only, on images whose
non-salient regions are blurred, m·x + (1 − m)·blur_b(x), at several blur levels b, plus the
originals (docs/reference-implementations.md §7; no public code).

Decisions (docs/decisions.md):
- Online, not offline: the CYBORG repo's script_gen expands the train CSV with pre-blurred copies
  (`BlurredImages/aligned/{Original,2,4,…,16}`). We build the composites per batch instead, from the
  human map the loader already gives, so no second dataset is stored. `sampling: random` (default)
  gives each image one version drawn uniformly from {original, level_1 … level_L} per step: its
  expected loss is the offline expanded set's per-image loss, at the cost and batch size of every
  other method ("identical configurations", SAGE §4.2). `sampling: all` puts every version of every
  image in the step (the expanded set's content per epoch, with (L+1)× the batch).
- A level b is the Gaussian σ in pixels at the training resolution, kernel 2⌈3σ⌉ + 1 (±3σ), capped
  at the largest odd size reflection padding allows (2·min(H, W) − 1).
- `mask: soft` uses the loader's map in [0, 1] as m; `binary` uses m = [h ≥ threshold].
- Samples without a map keep their original image (a zero map would blur them entirely).
With `levels: []` only originals remain and the loss is plain CE.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from salience.errors import ConfigError
from salience.losses.sage import composite, gaussian_blur
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy
from salience.methods.settings import Setting


def kernel_for(sigma: float, height: int, width: int) -> int:
    """Odd kernel covering ±3σ, capped so that reflection padding (k // 2 < side) is legal."""
    k = 2 * math.ceil(3 * sigma) + 1
    cap = 2 * min(height, width) - 1
    return min(k, cap)


@METHODS.register("boyd_blur")
class BoydBlur(Method):
    label = "Boyd et al."
    supported_backbones = None  # all: input-space augmentation, plain classifier
    settings: ClassVar[dict[str, Setting]] = {
        "levels": Setting(
            [2, 4, 6, 8, 10, 12, 14, 16],
            "list",
            item=Setting(1.0, "number", low=0, low_open=True),
            doc="Gaussian σ (px) of the blur levels (CYBORG script_gen's 8); may be empty",
        ),
        "include_original": Setting(True, "bool", doc="script_gen also lists `Original`"),
        "sampling": Setting(
            "random",
            "choice",
            choices=("random", "all"),
            doc="one version per image per step | all: every version",
        ),
        "mask": Setting(
            "soft", "choice", choices=("soft", "binary"), doc="m = h | binary: m = [h >= threshold]"
        ),
        "threshold": Setting(0.5, "number", low=0, high=1, doc="only for mask: binary"),
    }

    def check_params(self) -> None:
        p = self.params
        p["levels"] = [float(b) for b in p["levels"]]
        if not p["levels"] and not p["include_original"]:
            raise ConfigError(
                "methods.boyd_blur.levels: must be non-empty when include_original is false"
            )

    def versions(self) -> list[float | None]:
        """None = the original image, else a blur σ."""
        return ([None] if self.params["include_original"] else []) + list(self.params["levels"])

    def _version(self, x: Tensor, m: Tensor, has: Tensor, level: float | None) -> Tensor:
        if level is None:
            return x
        k = kernel_for(level, x.shape[-2], x.shape[-1])
        comp = composite(x, m, gaussian_blur(x, level, k))
        # Unannotated rows stay original (their zero map would blur the whole image).
        return torch.where(has.view(-1, 1, 1, 1), comp, x)

    def inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The training images of this step and their labels."""
        x, label, has = batch["image"], batch["label"], batch["has_map"].bool()
        m = batch["map"]
        if self.params["mask"] == "binary":
            m = (m >= float(self.params["threshold"])).to(x.dtype)
        versions = self.versions()
        if self.params["sampling"] == "all":
            xs = [self._version(x, m, has, v) for v in versions]
            return torch.cat(xs), label.repeat(len(xs))
        # Global torch RNG: seeded by the training loop, so runs are reproducible.
        pick = torch.randint(len(versions), (x.shape[0],), device=x.device)
        out = x.clone()
        for i, v in enumerate(versions):
            rows = pick == i
            if v is not None and bool(rows.any()):
                out[rows] = self._version(x[rows], m[rows], has[rows], v)
        return out, label

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        x, y = self.inputs(batch)
        logits = model(x)
        ce = cross_entropy(logits, y)
        # Running train AUROC: the first B rows (the original, or the sampled version, of each image).
        return LossOutput(total=ce, parts={"ce": ce}, logits=logits[: batch["image"].shape[0]])
