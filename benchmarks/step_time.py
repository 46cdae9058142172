"""Training-step time of every registered method relative to xent (same process, batch, backbone),
our cyborg step against a faithful re-creation of the public CYBORG loop, and evaluation throughput
against a bare `model(x)` loop over the same prepared data.

    .venv/bin/python benchmarks/step_time.py --backbone smallcnn --image-size 48 --batch 20
    .venv/bin/python benchmarks/step_time.py --backbone densenet121 --image-size 112 --batch 20 \
        --methods xent cyborg --cyborg-reference --eval

Prints Markdown tables (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import salience  # noqa: F401 - torchvision shim
from salience.methods.base import METHODS, build_method, import_all
from salience.models.base import build_backbone, feature_grid


def make_batch(n: int, size: int, grid: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(n, size, size, generator=g)
    hc = F.adaptive_avg_pool2d(h.unsqueeze(1), grid).squeeze(1)
    hc = (hc - hc.amin((1, 2), keepdim=True)) / (
        hc.amax((1, 2), keepdim=True) - hc.amin((1, 2), keepdim=True)
    ).clamp_min(1e-8)
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "label": torch.arange(n) % 2,
        "map": h,
        "map_cam": hc,
        "has_map": torch.ones(n, dtype=torch.bool),
        "row": torch.arange(n),
    }


def interleaved(steps: dict[str, callable], rounds: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        for step in steps.values():
            step()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step()
            samples[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def method_step(name: str, stage: str, backbone: str, batch: dict) -> callable:
    torch.manual_seed(0)
    method = build_method(name)
    model = method.build_model(build_backbone(backbone, weights="none"), stage=stage)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        loss = method.loss(model, batch, stage).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def cyborg_reference_step(batch: dict, image_size: int) -> callable:
    """The public CYBORG train_cam.py step (docs/reference-implementations.md §1.1–1.2): DenseNet-121,
    a second `model.features(x)` pass for the CAM, CAM of the predicted class built in a per-sample
    Python loop with unguarded min-max, loss α·CE + (1−α)·MSE."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None)
    model.classifier = torch.nn.Linear(1024, 2)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-6)
    ce, mse = torch.nn.CrossEntropyLoss(), torch.nn.MSELoss()
    x, y, hmap = batch["image"], batch["label"], batch["map_cam"]

    def step() -> None:
        outputs = model(x)
        features = model.features(x)  # second trunk pass, as the official code
        pred = outputs.argmax(1)
        params = model.classifier.weight
        cams = []
        for i in range(len(x)):
            c, hh, ww = features[i].shape
            cam = params[pred[i]] @ features[i].reshape(c, hh * ww)
            cam = cam.reshape(hh, ww)
            cam = cam - cam.min()
            cam = cam / cam.max()
            cams.append(cam)
        loss = 0.5 * ce(outputs, y) + 0.5 * mse(torch.stack(cams), hmap)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def eval_throughput(backbone: str, image_size: int, batch: int, n: int) -> tuple[float, float]:
    """images/s of `score_split` (our evaluation) vs a bare model(x) loop over the same memmaps."""
    from benchmarks_support import make_prepared  # noqa: I001 - local helper

    from salience.data.loader import to_tensor_images
    from salience.data.prepared import PreparedDataset
    from salience.evaluation.evaluate import EvalSplit, score_split
    from salience.methods.base import build_method as bm

    with tempfile.TemporaryDirectory() as tmp:
        root = make_prepared(Path(tmp), n=n, image_size=image_size)
        ds = PreparedDataset(root)
        rows = ds.rows("test")
        method = bm("xent")
        model = method.build_model(build_backbone(backbone, weights="none"))
        model.eval()
        grid = feature_grid(model.backbone, image_size)
        cpu = torch.device("cpu")
        score_split(model, method, EvalSplit(ds, rows[: batch * 2], grid, batch, cpu))  # warm-up
        t0 = time.perf_counter()
        score_split(model, method, EvalSplit(ds, rows, grid, batch, cpu))
        ours = len(rows) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, len(rows), batch):
                model(to_tensor_images(ds.images[rows[s : s + batch]]))
        bare = len(rows) / (time.perf_counter() - t0)
    return ours, bare


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backbone", default="smallcnn")
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    ap.add_argument(
        "--cyborg-reference",
        action="store_true",
        help="also time the public CYBORG loop (DenseNet-121)",
    )
    ap.add_argument("--eval", action="store_true", help="also measure evaluation throughput")
    ap.add_argument("--eval-images", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import_all()
    names = args.methods or METHODS.names()
    bb = build_backbone(args.backbone, weights="none")
    grid = feature_grid(bb, args.image_size)
    batch = make_batch(args.batch, args.image_size, grid)
    steps, rows = {}, []
    for name in names:
        for stage in METHODS.get(name).stages:
            label = f"{name}:{stage}" if stage != "train" else name
            if (msg := _unsupported(name, args.backbone)) is not None:
                rows.append((label, None, msg))
                continue
            steps[label] = method_step(name, stage, args.backbone, batch)
    if args.cyborg_reference:
        steps["__reference__"] = cyborg_reference_step(batch, args.image_size)
    # Round-robin: one step of every method per round, median over rounds. Under a fluctuating
    # load every method sees the same conditions, so the ratios stay fair.
    times = interleaved(steps, args.steps, args.warmup)
    rows += [(k, t, "") for k, t in times.items() if k != "__reference__"]
    rows.sort(key=lambda r: r[0])
    base = next(t for n, t, _ in rows if n == "xent")
    print(f"\n{' '.join(sys.argv)}\n")
    print(
        f"| method | s/step ({args.backbone} @{args.image_size}px, batch {args.batch}, {args.threads} threads) | ratio to xent |"
    )
    print("|---|---|---|")
    for n, t, msg in rows:
        print(f"| {n} | {t:.4f} | {t / base:.2f}× |" if t is not None else f"| {n} | — | {msg} |")
    if args.cyborg_reference:
        ref, ours = times["__reference__"], times["cyborg"]
        print(
            f"\n| CYBORG step | s/step | ratio |\n|---|---|---|\n| public loop re-created (densenet121, 2 passes, per-sample CAM loop) | {ref:.4f} | 1.00× |"
        )
        print(f"| salience cyborg ({args.backbone}) | {ours:.4f} | {ours / ref:.2f}× |")
    if args.eval:
        ours, bare = eval_throughput(args.backbone, args.image_size, 128, args.eval_images)
        print(
            f"\n| evaluation | images/s |\n|---|---|\n| bare model(x) loop | {bare:.1f} |\n| salience evaluate (scores + CAM agreement) | {ours:.1f} ({ours / bare:.2f}×) |"
        )


def _unsupported(name: str, backbone: str) -> str | None:
    cls = METHODS.get(name)
    if cls.supported_backbones is not None and backbone not in cls.supported_backbones:
        return f"unsupported: {cls.unsupported_reason}"
    return None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
