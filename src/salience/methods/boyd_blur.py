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
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from salience.errors import ConfigError
from salience.losses.sage import composite, gaussian_blur
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"methods.boyd_blur.{key}: must be {expected}")


def kernel_for(sigma: float, height: int, width: int) -> int:
    """Odd kernel covering ±3σ, capped so that reflection padding (k // 2 < side) is legal."""
    k = 2 * math.ceil(3 * sigma) + 1
    cap = 2 * min(height, width) - 1
    return min(k, cap)


@METHODS.register("boyd_blur")
class BoydBlur(Method):
    name = "boyd_blur"
    label = "Boyd et al."
    supported_backbones = None  # all: input-space augmentation, plain classifier
    defaults: ClassVar[dict[str, Any]] = {
        "levels": [2, 4, 6, 8, 10, 12, 14, 16],  # Gaussian σ (px); CYBORG script_gen's 8 levels
        "include_original": True,  # script_gen also lists `Original`
        "sampling": "random",  # one version per image per step | "all": every version
        "mask": "soft",  # m = h | "binary": m = [h >= threshold]
        "threshold": 0.5,  # only for mask: binary
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        levels = p["levels"]
        _check(
            isinstance(levels, (list, tuple))
            and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in levels
            ),
            "levels",
            "a list of Gaussian σ values > 0 (may be empty)",
        )
        p["levels"] = [float(b) for b in levels]
        _check(isinstance(p["include_original"], bool), "include_original", "true or false")
        _check(
            bool(p["levels"]) or p["include_original"],
            "levels",
            "non-empty when include_original is false",
        )
        _check(p["sampling"] in ("random", "all"), "sampling", "'random' or 'all'")
        _check(p["mask"] in ("soft", "binary"), "mask", "'soft' or 'binary'")
        t = p["threshold"]
        _check(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1,
            "threshold",
            "a number in [0, 1]",
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
