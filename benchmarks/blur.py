"""Gaussian blur of SAGE's views and Boyd's composites: salience's separable blur against
torchvision's 2-D-kernel `gaussian_blur` (the same numbers; tests/test_sage_losses.py), on one
training batch, one thread.

    .venv/bin/python benchmarks/blur.py --batch 20 --size 48

Prints a Markdown table (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import salience  # noqa: F401 - torchvision shim, needed before torchvision is imported
from salience.losses.sage import gaussian_blur
from salience.methods.boyd_blur import kernel_for


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[2.0, 8.0, 16.0])
    args = ap.parse_args()
    import torchvision.transforms.v2.functional as TF

    torch.set_num_threads(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    cases = [("SAGE view (k = 7)", 10.0, 7)]
    cases += [
        (f"Boyd level σ = {s:g}", s, kernel_for(s, args.size, args.size)) for s in args.sigmas
    ]
    print(
        f"| blur ({args.batch}×3×{args.size}×{args.size}) | kernel | torchvision 2-D (ms) | separable (ms) | speed-up |"
    )
    print("|---|---|---|---|---|")
    for name, sigma, k in cases:
        ref = median_ms(lambda s=sigma, k=k: TF.gaussian_blur(x, [k, k], [s, s]), args.repeats)
        ours = median_ms(lambda s=sigma, k=k: gaussian_blur(x, s, k), args.repeats)
        print(f"| {name} | {k} | {ref:.2f} | {ours:.2f} | {ref / ours:.1f}× |")


if __name__ == "__main__":
    main()
