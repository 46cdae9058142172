"""K-class Difference / Per-class / Contrast Salience (issue 12 §3) against an independent
implementation written here with plain loops over samples and classes (values and gradients),
and the K = 2 reduction to the binary code path, bit for bit."""

from __future__ import annotations

import pytest
import torch

from salience.cam import true_false_cams
from salience.losses import cam_terms
from salience.losses import multiclass as mc

EPS = 1e-8


# ------------------------------------------------------------------ the independent implementation
def norm(x: torch.Tensor) -> torch.Tensor:
    """DD §3.1's norm_[0,1] with the project's guard (a constant map → zeros)."""
    lo, hi = x.min(), x.max()
    return (x - lo) / torch.clamp(hi - lo, min=EPS)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).mean()


def reference(cams, logits, labels, h, choice: str, term: str) -> list[torch.Tensor]:
    """[terms] of one method and choice, by loops: per sample, the list of false-class maps f (one
    for strongest/mean, K − 1 for pairwise); each term is the mean over samples of the mean over
    that sample's maps of the per-map MSE (every map has g×g cells, so this is the batch mean)."""
    b_n, k = cams.shape[:2]
    first, second = [], []
    for b in range(b_n):
        y = int(labels[b])
        t = cams[b, y]
        wrong = [j for j in range(k) if j != y]
        if choice == "strongest":
            best = wrong[0]
            for j in wrong:
                if float(logits[b, j]) > float(logits[b, best]):
                    best = j
            fs = [cams[b, best]]
        elif choice == "mean":
            acc = cams[b, wrong[0]]
            for j in wrong[1:]:
                acc = acc + cams[b, j]
            fs = [acc / len(wrong)]
        else:
            fs = [cams[b, j] for j in wrong]
        if term == "difference":
            first.append(sum(mse(norm(t - f), h[b]) for f in fs) / len(fs))
            continue
        first.append(mse(norm(t), h[b]))
        target = 1.0 - h[b] if term == "perclass" else 1.0 - norm(t)
        second.append(sum(mse(norm(f), target) for f in fs) / len(fs))
    out = [sum(first) / b_n]
    if second:
        out.append(sum(second) / b_n)
    return out


def module_terms(cams, logits, labels, h, choice: str, term: str) -> list[torch.Tensor]:
    res = getattr(mc, term)(cams, logits, labels, h, choice)
    return list(res) if isinstance(res, tuple) else [res]


def batch(k: int, seed: int, b: int = 6, g: int = 5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    cams = torch.randn(b, k, g, g, generator=gen, dtype=dtype)
    logits = torch.randn(b, k, generator=gen, dtype=dtype)
    labels = torch.arange(b) % k  # every class is a true class somewhere
    h = torch.rand(b, g, g, generator=gen, dtype=dtype)
    return cams, logits, labels, h


# ------------------------------------------------------------------ K = 3, 4 against the reference
@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("choice", mc.FALSE_CLASSES)
@pytest.mark.parametrize("term", ["difference", "perclass", "contrast"])
def test_values_and_gradients_match_independent_loops(k: int, choice: str, term: str) -> None:
    cams, logits, labels, h = batch(k, seed=10 * k + len(choice))
    a = cams.clone().requires_grad_(True)
    r = cams.clone().requires_grad_(True)
    got = module_terms(a, logits, labels, h, choice, term)
    want = reference(r, logits, labels, h, choice, term)
    assert len(got) == len(want)
    for i, (x, w) in enumerate(zip(got, want)):
        assert torch.allclose(x, w, rtol=1e-12, atol=1e-14), (i, float(x), float(w))
        ga = torch.autograd.grad(x, a, retain_graph=True)[0]
        gr = torch.autograd.grad(w, r, retain_graph=True)[0]
        assert torch.allclose(ga, gr, rtol=1e-10, atol=1e-14), (i, (ga - gr).abs().max())
        assert ga.abs().sum() > 0
    # the choices differ for K > 2: strongest reaches one false CAM, mean and pairwise all of them
    # (the last term also reaches the true-class CAM, except Per-class's MSE(1 − h, norm f))
    g = torch.autograd.grad(got[-1], a)[0]
    touched = (g.abs().sum(dim=(2, 3)) > 0).sum(dim=1)
    want_touched = (1 if choice == "strongest" else k - 1) + (term != "perclass")
    assert touched.tolist() == [want_touched] * len(labels)


def test_strongest_takes_the_highest_wrong_logit_ties_to_lowest_index_and_no_logit_gradient() -> (
    None
):
    cams, _, _, h = batch(4, seed=1, b=3)
    logits = torch.tensor(
        [[9.0, 1.0, 3.0, 3.0], [0.0, 5.0, 7.0, 2.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64
    )
    labels = torch.tensor([0, 2, 3])
    # sample 0: wrong classes 1..3, tie 3 = 3 → class 2; sample 1: true class 2 has the highest
    # logit, the strongest wrong one is 1; sample 2: all tied → class 0
    assert mc.strongest_false_class(logits, labels).tolist() == [2, 1, 0]
    f = mc.false_class_cams(cams, logits, labels, "strongest")
    assert torch.equal(f[:, 0], cams[torch.arange(3), torch.tensor([2, 1, 0])])
    lg = logits.clone().requires_grad_(True)
    c = cams.clone().requires_grad_(True)
    mc.difference(c, lg, labels, h, "strongest").backward()
    assert lg.grad is None and c.grad is not None


def test_false_cams_order_and_mean() -> None:
    cams = torch.arange(2 * 4, dtype=torch.float64).view(2, 4, 1, 1).expand(2, 4, 2, 2)
    labels = torch.tensor([1, 3])
    fs = mc.false_cams(cams, labels)
    assert fs[:, :, 0, 0].tolist() == [[0, 2, 3], [4, 5, 6]]
    logits = torch.zeros(2, 4)
    assert mc.false_class_cams(cams, logits, labels, "mean")[:, 0, 0, 0].tolist() == [5 / 3, 5.0]
    assert torch.equal(
        mc.true_cam(cams, labels)[:, 0, 0], torch.tensor([1.0, 7.0], dtype=cams.dtype)
    )


def test_nan_logit_makes_the_strongest_term_nan() -> None:
    cams, logits, labels, h = batch(3, seed=2)
    logits[1, 0] = float("nan")
    assert torch.isnan(mc.difference(cams, logits, labels, h, "strongest"))
    assert torch.isfinite(mc.difference(cams, logits, labels, h, "mean"))


# ------------------------------------------------------------------ K = 2: the paper's definitions
@pytest.mark.parametrize("choice", mc.FALSE_CLASSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_k2_reduces_bit_for_bit_to_the_binary_terms(choice: str, dtype) -> None:
    cams, logits, _, h = batch(2, seed=3, b=7, g=7, dtype=dtype)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    a = cams.clone().requires_grad_(True)
    r = cams.clone().requires_grad_(True)
    t, f = true_false_cams(r, labels)
    for term in ("difference", "perclass", "contrast"):
        got = module_terms(a, logits, labels, h, choice, term)
        res = getattr(cam_terms, term)(t, f, h)
        want = list(res) if isinstance(res, tuple) else [res]
        for x, w in zip(got, want, strict=True):
            assert torch.equal(x, w), (term, float(x), float(w))
            ga = torch.autograd.grad(x, a, retain_graph=True)[0]
            gr = torch.autograd.grad(w, r, retain_graph=True)[0]
            assert torch.equal(ga, gr), term


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"false_class": "max"},
            r"^false_class 'max' is unknown \(choose strongest, mean, pairwise\)$",
        ),
        ({"cams": torch.zeros(4, 1, 3, 3)}, "K = 1 classes; the false-class terms need K ≥ 2"),
        ({"cams": torch.zeros(4, 3, 3)}, r"cams must be B×K×g×g, got shape \(4, 3, 3\)"),
        ({"logits": torch.zeros(4, 2)}, r"logits \(4, 2\) do not match cams \(4, 3, 3, 3\)"),
        ({"labels": torch.zeros(3, dtype=torch.long)}, r"labels \(3,\) do not match"),
        ({"h": torch.zeros(4, 2, 3)}, r"human map \(4, 2, 3\) does not match cams"),
        ({"labels": torch.tensor([0, 1, 3, 2])}, r"labels must lie in \[0, 3\) .* got 0…3"),
    ],
)
def test_bad_input_is_one_line_value_error(change: dict, message: str) -> None:
    args = {
        "cams": torch.zeros(4, 3, 3, 3),
        "logits": torch.zeros(4, 3),
        "labels": torch.tensor([0, 1, 2, 0]),
        "h": torch.zeros(4, 3, 3),
        "false_class": "strongest",
        **change,
    }
    for term in (mc.difference, mc.perclass, mc.contrast):
        with pytest.raises(ValueError, match=message) as err:
            term(**args)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("choice", mc.FALSE_CLASSES)
def test_constant_cams_and_maps_give_finite_terms_and_gradients(choice: str) -> None:
    # all-zero weights give all-zero CAMs and logits (docs/robustness.md, "Degenerate numerics")
    cams = torch.zeros(4, 3, 5, 5, requires_grad=True)
    logits, labels = torch.zeros(4, 3), torch.tensor([0, 1, 2, 2])
    for h in (torch.zeros(4, 5, 5), torch.full((4, 5, 5), 0.5)):
        for term in ("difference", "perclass", "contrast"):
            for x in module_terms(cams, logits, labels, h, choice, term):
                (g,) = torch.autograd.grad(x, cams, retain_graph=True)
                assert torch.isfinite(x) and torch.isfinite(g).all(), term


def test_docs_quote_the_messages() -> None:
    """docs/robustness.md ("Multi-class scores and terms") quotes these messages verbatim."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    cams, labels, h = torch.zeros(4, 3, 3, 3), torch.tensor([0, 1, 2, 0]), torch.zeros(4, 3, 3)
    for logits, choice in ((torch.zeros(4, 3), "max"), (torch.zeros(4, 2), "strongest")):
        with pytest.raises(ValueError) as err:
            mc.difference(cams, logits, labels, h, choice)
        assert f"`` {err.value} ``" in doc
