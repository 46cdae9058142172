"""Cost of the DD RQ1 measurements of one run (`rq1-score`): CC/SIM/KL/NSS of t, f and d over the
test split, and the deletion + insertion curves of t, f, d and random for several subset sizes and
step counts. A generated, prepared dataset at the demo's size; an untrained smallcnn CAM model (the
cost depends on the forward passes, not on the weights); one thread.

    .venv/bin/python benchmarks/rq1_score.py --n-test 600 --size 48 --images 16 32 64 --steps 8 16

Prints a Markdown table (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from benchmarks_support import make_prepared

from salience.data.prepared import PreparedDataset
from salience.evaluation.rq1 import faithfulness, map_metrics, pick_rows
from salience.methods.base import build_method
from salience.models.base import build_backbone


def median_s(fn, repeats: int) -> tuple[float, float]:
    """Median CPU seconds (process time: one thread, so the idle-machine wall time, robust to other
    jobs on a shared machine) and median wall seconds."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--images", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ds = PreparedDataset(make_prepared(Path(tmp), args.n_test, args.size))
        method = build_method("fooling", {})
        model = method.build_model(
            build_backbone("smallcnn", weights="none"), cam_layer="pooled"
        ).eval()
        grid = args.size // 8
        test = ds.rows("test")
        c, w = median_s(lambda: map_metrics(model, ds, test, grid, 0.2, 128), args.repeats)
        print(f"| part | setting | CPU s | wall s (median of {args.repeats}) |")
        print("|---|---|---|---|")
        print(f"| CC/SIM/KL/NSS of t, f, d | {len(test)} test images | {c:.2f} | {w:.2f} |")
        for n in args.images:
            rows = pick_rows(ds, "test", n, 0)
            for steps in args.steps:
                s = {"seed": 0, "faithfulness_steps": steps, "sigma": 10.0, "kernel_size": 7}
                c, w = median_s(
                    lambda r=rows, s=s: faithfulness(model, method, ds, r, grid, s), args.repeats
                )
                fwd = 2 * 4 * (steps + 1) * len(rows)
                what = f"{len(rows)} images × {steps} steps ({fwd} image forwards)"
                print(f"| deletion + insertion, t/f/d/random | {what} | {c:.2f} | {w:.2f} |")


if __name__ == "__main__":
    main()
