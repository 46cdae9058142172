"""Statistics over seeds: mean, std (ddof=1), t-based 95 % CI, paired tests against a baseline.

Both papers report "mean ± std" over independent runs (DD: 10 seeds, SAGE: 5 runs) without saying
which std; we use the sample std (ddof=1). Undefined quantities (n < 2, zero-variance differences)
are None, never NaN: the CSV cell is then empty and the LaTeX shows "—".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

WILCOXON_MIN_N = 6  # below 6 pairs the exact two-sided signed-rank p can never reach 0.05


def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std and the t-interval of the mean over seeds."""
    x = np.asarray(values, dtype=float)
    if x.size and not np.isfinite(x).all():
        raise ValueError("summarize: non-finite value among the seeds")
    n = int(x.size)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = float(x.mean())
    if n < 2:
        return Summary(n, mean, None, None, None)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    n: int  # matched seeds
    p_ttest: float | None
    p_wilcoxon: float | None  # only when n >= WILCOXON_MIN_N


def paired_test(x: Mapping[int, float], y: Mapping[int, float]) -> PairedTest:
    """Two-sided paired t-test (and Wilcoxon signed-rank, n ≥ 6) of x vs y on seeds present in both."""
    seeds = sorted(set(x) & set(y))
    n = len(seeds)
    if n < 2:
        return PairedTest(n, None, None)
    a = np.array([x[s] for s in seeds], dtype=float)
    b = np.array([y[s] for s in seeds], dtype=float)
    d = a - b
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        # zero-variance differences: t is undefined (0/0) or infinite; report nothing
        return PairedTest(n, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_t = _clean(stats.ttest_rel(a, b).pvalue)
        p_w = None
        if n >= WILCOXON_MIN_N:
            try:
                p_w = _clean(stats.wilcoxon(a, b).pvalue)
            except ValueError:
                p_w = None
    return PairedTest(n, p_t, p_w)
