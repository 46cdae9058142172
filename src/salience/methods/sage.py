"""SAGE (Crum & Czajka, "SAGE: Saliency-Guided Contrastive Embeddings", arXiv 2511.12744, §3).

Per batch: x, x' = G(x), x̃ = h·x + (1−h)·G(x), x̃' = (1−h)·x + h·G(x) (§3.1, Gaussian 7×7, σ = 10)
→ logits y, y', ỹ, ỹ' and pooled embeddings z, z', z̃, z̃' (the tensor before the classifier, §3.3).
  SLA (Eq. 3) = λ·s(τ)·JS(σ(y/τ) ‖ σ(ỹ/τ)) + (1−λ)·s(τ)·JS(σ(y'/τ) ‖ σ(ỹ'/τ)), s(τ) = 2^τ
  SCE (Eq. 6) = λ·max(cs(z, z̃) − cs(z, z̃') + μ, 0) + (1−λ)·max(cs(z', z̃') − cs(z', z̃) + μ, 0)
  total (Eq. 8) = α·CE + (1−α)·(SLA + SCE), μ = cs(z, z') (the dynamic margin)
Eq. 2's text says y'_s comes from f(x); read as f(x') (docs/methods.md): otherwise Eq. 3's second term
would compare the clean image with the salient-degraded one, contradicting §3.2's prose.

Samples without a human map (has_map False) get the α·CE term only: the loader gives them h = 0,
which would make x̃ = G(x) and x̃' = x, i.e. train them towards the *inverse* of any saliency. Their
three views are not even computed; SLA and SCE are means over the annotated rows. With α = 1 no view
is computed at all and the loss is plain CE.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from salience.losses import sage as S
from salience.methods.base import METHODS, LossOutput, Method, cross_entropy, zero
from salience.methods.settings import Setting


@METHODS.register("sage")
class Sage(Method):
    label = "SAGE"
    supported_backbones = None  # all: needs only forward_all (logits + pooled embedding)
    settings: ClassVar[dict[str, Setting]] = {
        "alpha": Setting(0.5, "number", low=0, high=1, doc="Eq. 8 trade-off CE vs (SLA + SCE)"),
        "lam": Setting(
            0.5, "number", low=0, high=1, doc="λ of Eqs. 3 and 6 (one λ for both, as in the paper)"
        ),
        "tau": Setting(
            2.0, "number", low=0, low_open=True, doc="softmax temperature (Table 4: 1, 2, 3)"
        ),
        "tau_scale": Setting(
            "pow2", "choice", choices=("pow2", "square"), doc="2^τ (paper §3.2) | Hinton's τ²"
        ),
        "sigma": Setting(
            10.0, "number", low=0, low_open=True, doc="Gaussian σ (Table 5: 5, 7, 10, 12)"
        ),
        "kernel_size": Setting(7, "integer", low=1, odd=True, doc="Gaussian kernel side K"),
        "margin": Setting(
            "per_sample",
            "choice",
            choices=("per_sample", "batch_mean"),
            doc="μ = cs(z_i, z'_i) per sample | batch_mean: over the batch",
        ),
        "margin_detach": Setting(
            True, "bool", doc="μ is a target gap, not something to shrink by moving z or z'"
        ),
        "views": Setting(
            "separate",
            "choice",
            choices=("separate", "concat"),
            doc="one forward pass per view (own BN batch stats) | concat: one pass",
        ),
        "ce_on": Setting(
            "clean", "choice", choices=("clean", "all"), doc="CE on x only | all: mean over views"
        ),
    }

    def check_params(self) -> None:
        self.params["kernel_size"] = int(self.params["kernel_size"])

    def scale(self) -> float:
        tau = float(self.params["tau"])
        return 2.0**tau if self.params["tau_scale"] == "pow2" else tau**2

    def _forward_views(self, model: nn.Module, views: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """(logits, embedding) per view: separate passes, or one pass over the concatenation."""
        if self.params["views"] == "separate":
            outs = [model.forward_all(v) for v in views]
            return [(o.logits, o.embedding) for o in outs]
        out = model.forward_all(torch.cat(views))
        sizes = [v.shape[0] for v in views]
        return list(zip(out.logits.split(sizes), out.embedding.split(sizes), strict=True))

    def loss(self, model: nn.Module, batch: dict[str, Tensor], stage: str = "train") -> LossOutput:
        p = self.params
        x, label, has = batch["image"], batch["label"], batch["has_map"].bool()
        alpha, lam = float(p["alpha"]), float(p["lam"])
        if alpha == 1.0 or not bool(has.any()):
            out = model.forward_all(x)
            ce = cross_entropy(out.logits, label)
            parts = {"ce": alpha * ce, "sla": zero(ce), "sce": zero(ce)}
            return LossOutput(total=sum(parts.values()), parts=parts, logits=out.logits)

        # Views only for annotated rows (see module docstring); the clean pass covers the batch.
        xa, ha = x[has], batch["map"][has]
        x_blur, x_keep, x_degrade = S.blur_views(xa, ha, p["sigma"], p["kernel_size"])
        (y_all, z_all), (y1, z1), (yk, zk), (yd, zd) = self._forward_views(
            model, [x, x_blur, x_keep, x_degrade]
        )
        y, z = y_all[has], z_all[has]

        ce = cross_entropy(y_all, label)
        if p["ce_on"] == "all":
            la = label[has]
            ce = (ce + cross_entropy(y1, la) + cross_entropy(yk, la) + cross_entropy(yd, la)) / 4

        tau, s = float(p["tau"]), self.scale()
        sla = lam * s * S.js_divergence(y, yk, tau) + (1 - lam) * s * S.js_divergence(y1, yd, tau)

        # Dynamic margin μ = cs(z, z') (§3.3): how far blurring alone moves the embedding.
        mu = S.cosine_distance(z, z1)
        if p["margin"] == "batch_mean":
            mu = mu.mean()
        if p["margin_detach"]:
            mu = mu.detach()
        sce = lam * S.triplet(z, zk, zd, mu) + (1 - lam) * S.triplet(z1, zd, zk, mu)

        parts = {"ce": alpha * ce, "sla": (1 - alpha) * sla, "sce": (1 - alpha) * sce}
        return LossOutput(total=sum(parts.values()), parts=parts, logits=y_all)
