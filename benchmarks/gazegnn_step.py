"""GazeGNN (Pyramid ViG + gaze) training-step and scoring time on the CPU, next to xent on a CNN
at the same size and batch (interleaved rounds, median).

    .venv/bin/python benchmarks/gazegnn_step.py --image-size 224 --batch 20 --steps 3 --compare resnet50
    .venv/bin/python benchmarks/gazegnn_step.py --image-size 48 --batch 20 --steps 10 --compare smallcnn \
        --channels 16 32 64 96 --blocks 1 1 2 1

Prints a Markdown table (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import salience  # noqa: F401 - torchvision shim
from salience.methods.base import build_method
from salience.models.base import build_backbone


def batch_of(n: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "label": torch.arange(n) % 2,
        "map": torch.rand(n, size, size, generator=g),
        "map_cam": torch.rand(n, max(size // 32, 1), max(size // 32, 1), generator=g),
        "has_map": torch.ones(n, dtype=torch.bool),
        "row": torch.arange(n),
    }


def timers(name: str, params: dict, backbone: str, batch: dict) -> tuple:
    torch.manual_seed(0)
    method = build_method(name, params)
    if method.own_network:
        model = method.build_own_model("none")
    else:
        model = method.build_model(build_backbone(backbone, weights="none"))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        model.train()
        loss = method.loss(model, batch).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def score() -> None:
        model.eval()
        method.logits(model, batch)

    return step, score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", default="resnet50", help="backbone of the xent reference")
    ap.add_argument("--channels", type=int, nargs=4, help="default: Pyramid ViG-Ti")
    ap.add_argument("--blocks", type=int, nargs=4, help="default: Pyramid ViG-Ti")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = {k: getattr(args, k) for k in ("channels", "blocks") if getattr(args, k)}
    batch = batch_of(args.batch, args.image_size)
    runs = {
        "gazegnn": timers("gazegnn", params, args.compare, batch),
        f"xent ({args.compare})": timers("xent", {}, args.compare, batch),
    }
    for _ in range(args.warmup):
        for step, score in runs.values():
            step(), score()
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for _ in range(args.steps):
        for k, (step, score) in runs.items():
            t0 = time.perf_counter()
            step()
            t1 = time.perf_counter()
            score()
            samples[k].append((t1 - t0, time.perf_counter() - t1))
    print("\n" + " ".join(["benchmarks/gazegnn_step.py", *sys.argv[1:]]) + "\n")
    size = "Ti" if not params else f"channels {args.channels}, blocks {args.blocks}"
    head = f"@{args.image_size}px, batch {args.batch}, {args.threads} thread(s)"
    print(
        f"| model ({size} for gazegnn) | train s/step {head} | scoring s/batch | images/s scored |"
    )
    print("|---|---|---|---|")
    for k, v in samples.items():
        tr = statistics.median(s for s, _ in v)
        ev = statistics.median(e for _, e in v)
        print(f"| {k} | {tr:.3f} | {ev:.3f} | {args.batch / ev:.0f} |")


if __name__ == "__main__":
    main()
