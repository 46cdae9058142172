"""Fixation maps at MIMIC-CXR size: salience's analytic rasteriser against scipy's gaussian_filter
of a duration-weighted point image (the same numbers; tests/test_import_maps.py), and the whole
`import fixations` per image (rasterise, min-max, PNG write), one thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fixation_maps.py

Prints a Markdown table (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from salience.data.fixations import import_fixations, rasterise


def seconds(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=2544)
    ap.add_argument("--height", type=int, default=3056)
    ap.add_argument("--fixations", type=int, default=150, help="per image")
    ap.add_argument("--images", type=int, default=4, help="for the whole import")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[50.0, 150.0])
    args = ap.parse_args()
    w, h, n = args.width, args.height, args.fixations
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, w, n), rng.integers(0, h, n)
    d = rng.uniform(0.1, 1.0, n)
    print(f"| {h}×{w}, {n} fixations | scipy gaussian_filter (s) | rasterise (s) | speed-up |")
    print("|---|---|---|---|")
    for s in args.sigmas:
        pts = np.zeros((h, w))
        np.add.at(pts, (y, x), d)
        t_ref = seconds(gaussian_filter, pts, s, mode="constant")
        sig = np.full(n, s)
        t_own = seconds(rasterise, x * 1.0, y * 1.0, d, sig, sig, (h, w))
        print(f"| σ = {s:g} px | {t_ref:.2f} | {t_own:.2f} | {t_ref / t_own:.0f}× |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines, rows = ["image,split,label"], ["image,x,y,duration"]
        for i in range(args.images):
            Image.fromarray(np.zeros((h, w), np.uint8)).save(root / f"im{i}.png")
            lines.append(f"im{i},{('train', 'val', 'test')[i % 3]},{i % 2}")
            rows += [f"im{i},{a},{b},{c:.3f}" for a, b, c in zip(x, y, d)]
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
        (root / "fix.csv").write_text("\n".join(rows) + "\n")
        t = seconds(
            lambda: import_fixations(
                [root / "fix.csv"], root / "labels.csv", root / "m.csv", images=root, sigma=150.0
            )
        )
    print(f"\nwhole import, σ = 150 px: {t / args.images:.2f} s per image ({args.images} images)")


if __name__ == "__main__":
    main()
