"""Benchmark of the data layer: prepare throughput, streaming throughput, and the peak memory of
streaming a test set `--scale`× larger than the default (it should stay flat).

    .venv/bin/python benchmarks/prepare.py            # prints a Markdown table
    .venv/bin/python benchmarks/prepare.py --task face --scale 10 --batch-size 20

- prepare: images/s of `salience.data.prepare.prepare` on the default generated task (decode PNG,
  resize, map min-max, CAM-grid maps, hashes; one process).
- streaming: batches/s of iterating the train split in shuffled batches, as a training loop does
  (memmap slice → float tensor, ImageNet normalisation, CAM-grid maps).
- peak RSS: a fresh subprocess streams the whole test split once (1× and `--scale`× the default
  n_test), with and without `PreparedDataset.release_pages()` every 50 batches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil


def stream(
    root: str, split: str, batch_size: int, release_every: int, epochs: int = 1, seed: int = 0
) -> dict:
    import torch

    from salience.data.prepared import PreparedDataset

    torch.set_num_threads(1)
    ds = PreparedDataset(root)
    rows = ds.rows(split)
    grid = ds.cam_grids[0] if ds.cam_grids else 6
    cam = ds.maps_cam(grid)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    labels = ds.labels
    proc = psutil.Process()
    rss0 = peak = proc.memory_info().rss
    n = 0
    checksum = 0.0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = (
            rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]
            if split == "train"
            else rows
        )
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start : start + batch_size])
            x = (
                torch.from_numpy(np.ascontiguousarray(ds.images[idx])).permute(0, 3, 1, 2).float()
                / 255
            )
            x = (x - mean) / std
            h = torch.from_numpy(np.ascontiguousarray(cam[idx]))
            y = torch.from_numpy(labels[idx])
            checksum += float(x[:, 0, 0, 0].sum()) + float(h.sum()) + int(y.sum())
            n += 1
            if release_every and n % release_every == 0:
                ds.release_pages()
            if n % 10 == 0:
                peak = max(peak, proc.memory_info().rss)
    dt = time.perf_counter() - t0
    peak = max(peak, proc.memory_info().rss)
    return {
        "batches": n,
        "seconds": dt,
        "batches_per_s": n / dt,
        "images": int(len(rows) * epochs),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss0 / 2**20,
        "stream_peak_mb": peak / 2**20,
        "test_bytes_mb": (ds.images[rows].nbytes + ds.maps[rows].nbytes) / 2**20
        if split == "test"
        else None,
    }


def child_rss(root: Path, batch_size: int, release_every: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(root),
        "--batch-size",
        str(batch_size),
        "--release-every",
        str(release_every),
    ]
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", default="iris", choices=["iris", "face", "chest"])
    ap.add_argument(
        "--image-size", type=int, default=48, help="prepared size (default: the demo's 48)"
    )
    ap.add_argument("--cam-grid", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument(
        "--scale", type=int, default=10, help="test-set size multiple for the RSS check"
    )
    ap.add_argument("--epochs", type=int, default=10, help="streaming epochs over the train split")
    ap.add_argument("--work", help="scratch folder (default: a temporary folder)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--release-every", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(stream(args.child, "test", args.batch_size, args.release_every)))
        return 0

    from salience.data.generate import generate, knobs_for
    from salience.data.prepare import prepare

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-prepare-"))
    k = knobs_for(args.task)
    t0 = time.perf_counter()
    manifest = generate(args.task, work / "raw", seed=0)
    t_gen = time.perf_counter() - t0
    n = k.n_train + k.n_val + k.n_test
    t0 = time.perf_counter()
    root = prepare(manifest, work / "prepared", args.image_size, [args.cam_grid])
    t_prep = time.perf_counter() - t0
    st = stream(str(root), "train", args.batch_size, 0, epochs=args.epochs)

    sets = {}
    for mult in (1, args.scale):
        m = generate(
            args.task, work / f"raw-x{mult}", seed=1, n_train=4, n_val=4, n_test=k.n_test * mult
        )
        sets[mult] = prepare(m, work / f"prep-x{mult}", args.image_size, [args.cam_grid])
    rss = {
        (mult, rel): child_rss(sets[mult], args.batch_size, rel) for mult in sets for rel in (0, 50)
    }

    print(
        f"\n`{' '.join(['python', 'benchmarks/prepare.py', *(argv if argv is not None else sys.argv[1:])])}` "
        f"({args.task}, {n} images generated at {k.image_size} px, prepared at {args.image_size} px, "
        f"CAM grid {args.cam_grid}, batch {args.batch_size}, 1 thread, {os.cpu_count()} CPU(s))\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| generate (PNG images + maps) | {n / t_gen:,.0f} images/s ({t_gen:.1f} s for {n}) |")
    print(
        f"| prepare (decode, resize, maps, CAM grid, hashes) | {n / t_prep:,.0f} images/s ({t_prep:.2f} s for {n}) |"
    )
    print(
        f"| streaming the train split into float tensors ({args.epochs} shuffled epochs) | "
        f"{st['batches_per_s']:,.0f} batches/s "
        f"({st['batches_per_s'] * args.batch_size:,.0f} images/s, {st['batches']} batches) |"
    )
    print()
    print(
        "| streaming the test split once (fresh process) | images | arrays read | RSS before | peak RSS while streaming | growth | ru_maxrss |"
    )
    print("|---|---|---|---|---|---|---|")
    for (mult, rel), r in sorted(rss.items()):
        how = "`release_pages()` every 50 batches" if rel else "plain memmap slicing"
        print(
            f"| {mult}× default, {how} | {r['images']} | {r['test_bytes_mb']:.1f} MiB | {r['rss_before_mb']:.0f} MiB "
            f"| {r['stream_peak_mb']:.0f} MiB | {r['stream_peak_mb'] - r['rss_before_mb']:+.1f} MiB | {r['maxrss_mb']:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
