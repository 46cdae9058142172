"""Calibrate the generated benchmark with cross-entropy only (docs/benchmark.md, "Calibration").

For each task and knob setting: generate → prepare → train `smallcnn` with plain cross-entropy
(the demo's optimiser: SGD lr 0.01, momentum 0.9, wd 1e-6, batch 20) → keep the epoch with the best
val AUROC → report val AUROC (in distribution, shortcut present), test AUROC (shortcut shifted), and
the same for the "oracle": identical images, but trained on data whose cue is independent of the
label (shortcut_strength 0.5). Saliency methods are never run here.

    .venv/bin/python benchmarks/calibrate_generator.py --tasks iris face chest --seeds 0 1 2
    .venv/bin/python benchmarks/calibrate_generator.py --tasks face --set signal_strength=0.08 --jobs 8

Prints a Markdown table (mean ± std over seeds); --json writes every run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DEMO_SEEDS = {"iris": 1, "face": 2, "chest": 3}  # generator seeds of config/config.yaml


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v.split("+") if "+" in v else v


def dataset(task: str, knobs: dict, work: Path, image_size: int) -> Path:
    import salience.data.generate as gen
    from salience.data.generate import generate
    from salience.data.prepare import prepare

    code = "".join(p.read_text() for p in sorted(Path(gen.__file__).parent.glob("*.py")))
    key = hashlib.sha256(
        json.dumps([task, knobs, image_size, code], sort_keys=True).encode()
    ).hexdigest()[:12]
    prepared = work / f"{task}-{key}-prep"
    if not prepared.exists():
        manifest = generate(task, work / f"{task}-{key}-raw", **knobs)
        prepare(manifest, prepared, image_size, [])
    return prepared


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def train_eval(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from salience.data.prepared import PreparedDataset
    from salience.models.base import Classifier, build_backbone

    ds = PreparedDataset(job["prepared"])
    torch.manual_seed(job["seed"])
    model = Classifier(build_backbone("smallcnn", weights="none"))
    opt = torch.optim.SGD(model.parameters(), lr=job["lr"], momentum=0.9, weight_decay=1e-6)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    labels = ds.labels

    def x_of(idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(ds.images[idx])).permute(0, 3, 1, 2).float() / 255
        return (x - mean) / std

    def scores(rows: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(rows), 256):
                out.append(torch.softmax(model(x_of(rows[i : i + 256])), 1)[:, 1].numpy())
        model.train()
        return np.concatenate(out)

    train, val, test = ds.rows("train"), ds.rows("val"), ds.rows("test")
    rng = np.random.default_rng(job["seed"])
    best = (-1.0, None, -1)
    for epoch in range(job["epochs"]):
        order = train[rng.permutation(len(train))]
        for i in range(0, len(order), 20):
            idx = np.sort(order[i : i + 20])
            loss = torch.nn.functional.cross_entropy(
                model(x_of(idx)), torch.from_numpy(labels[idx])
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        v = auroc(labels[val], scores(val))
        if v >= best[0]:  # latest tie wins, as CYBORG's model selection
            best = (v, scores(test), epoch)
    v, s_test, epoch = best
    res = {
        **{k: job[k] for k in ("task", "variant", "seed", "label")},
        "val_auc": v,
        "best_epoch": epoch,
    }
    res["test_auc"] = auroc(labels[test], s_test)
    sub = ds.index["subset"].to_numpy()[test]
    y = labels[test]
    res["per_subset"] = {
        name: auroc(y[(sub == name) | (y == 0)], s_test[(sub == name) | (y == 0)])
        for name in sorted(set(sub) - {""})
    }
    seen = set(ds.subsets("train"))
    for name, keep in (("seen_auc", lambda x: x in seen), ("unseen_auc", lambda x: x not in seen)):
        sel = np.array([y_ == 0 or (s_ != "" and keep(s_)) for s_, y_ in zip(sub, y)])
        res[name] = auroc(y[sel], s_test[sel]) if len(set(y[sel])) == 2 else None
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", nargs="+", default=["iris", "face", "chest"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--image-size", type=int, default=48, help="prepared size (the network input)")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KNOB=VALUE", help="generator knob overrides"
    )
    ap.add_argument("--label", default="default", help="name of this setting in the table")
    ap.add_argument("--variants", nargs="+", default=["ce", "oracle"], choices=["ce", "oracle"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--work", help="cache folder for generated data (default: a temporary folder)")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args(argv)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: parse_value(v) for k, v in overrides.items()}
    work = Path(args.work or tempfile.mkdtemp(prefix="calib-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    jobs = []
    for task in args.tasks:
        knobs = {"seed": DEMO_SEEDS[task], **overrides}
        variants = {"ce": knobs, "oracle": {**knobs, "shortcut_strength": 0.5}}
        for variant in args.variants:
            kn = variants[variant]
            prepared = dataset(task, kn, work, args.image_size)
            for seed in args.seeds:
                jobs.append(
                    {
                        "task": task,
                        "variant": variant,
                        "seed": seed,
                        "label": args.label,
                        "prepared": str(prepared),
                        "epochs": args.epochs,
                        "lr": args.lr,
                    }
                )
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(train_eval, jobs))
    else:
        results = [train_eval(j) for j in jobs]
    print(
        f"\nsetting `{args.label}`: {' '.join(args.set) or 'defaults'}; {args.epochs} epochs, lr {args.lr}, "
        f"seeds {args.seeds}; {time.time() - t0:.0f} s\n"
    )
    print(
        "| task | CE val AUROC | CE test AUROC | oracle val AUROC | oracle test AUROC | gap | "
        "test AUROC, subsets seen in training (CE / oracle) | unseen subsets (CE / oracle) | "
        "per-subset test AUROC, CE/oracle |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        cell = {}
        for variant in ("ce", "oracle"):
            rs = [r for r in results if r["task"] == task and r["variant"] == variant]
            if rs:
                keys = ("val_auc", "test_auc", "seen_auc", "unseen_auc")
                cell[variant] = {k: np.array([r[k] for r in rs], dtype=float) for k in keys}
                cell[variant]["sub"] = {
                    s: np.mean([r["per_subset"][s] for r in rs]) for s in rs[0]["per_subset"]
                }

        def fmt(v, k, cell=cell):
            if v not in cell or np.isnan(cell[v][k]).any():
                return "—"
            return f"{cell[v][k].mean():.3f} ± {cell[v][k].std():.3f}"

        def pair(k, cell=cell):
            return " / ".join(fmt(v, k).split(" ± ")[0] for v in ("ce", "oracle"))

        gap = "—"
        if "oracle" in cell and "ce" in cell:
            gap = f"{cell['oracle']['test_auc'].mean() - cell['ce']['test_auc'].mean():+.3f}"
        subs = (
            ", ".join(
                f"{s} "
                + "/".join(
                    f"{cell[v]['sub'][s]:.2f}" if v in cell else "—" for v in ("ce", "oracle")
                )
                for s in next(iter(cell.values()))["sub"]
            )
            or "—"
        )
        print(
            f"| {task} | {fmt('ce', 'val_auc')} | {fmt('ce', 'test_auc')} | {fmt('oracle', 'val_auc')} | "
            f"{fmt('oracle', 'test_auc')} | {gap} | {pair('seen_auc')} | {pair('unseen_auc')} | {subs} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
