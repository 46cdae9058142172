"""`python -m salience generate | prepare | import` (wired into the main CLI by `add_parsers`).

Each handler takes the parsed namespace, returns 0, prints where its output went, and raises
DataError / ConfigError for bad input (the main CLI prints `error: <message>` and exits 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from salience.errors import ConfigError


def add_parsers(subparsers: Any) -> None:
    """Add `generate`, `prepare` and `import` to an argparse subparsers object."""
    _add_generate(subparsers)
    _add_prepare(subparsers)
    _add_import(subparsers)


def _add_generate(subparsers: Any) -> None:
    g = subparsers.add_parser(
        "generate",
        help="write the generated benchmark (PNGs + manifest.csv)",
        description="Generate one task of the embedded benchmark (docs/benchmark.md). Either --config "
        "CFG --dataset NAME (settings from datasets.NAME.generator), or --task T --out DIR.",
    )
    g.add_argument("--config", help="config YAML")
    g.add_argument("--dataset", help="dataset name in the config")
    g.add_argument(
        "--task", choices=["iris", "face", "chest", "gaze3"], help="task (without --config)"
    )
    g.add_argument("--out", help="output folder (default with --config: <data_dir>/raw/<dataset>)")
    g.add_argument("--seed", type=int, help="generator seed (docs/benchmark.md)")
    g.add_argument("--image-size", type=int, help="image side in pixels")
    g.add_argument("--n-train", type=int, help="training images")
    g.add_argument("--n-val", type=int, help="validation images")
    g.add_argument("--n-test", type=int, help="test images")
    g.add_argument("--signal-strength", type=float, help="contrast of the true class evidence")
    g.add_argument("--shortcut-strength", type=float, help="P(cue agrees with label) in train/val")
    g.add_argument(
        "--shortcut-kind", choices=["corner", "stripes"], help="the planted shortcut cue"
    )
    g.add_argument("--shortcut-contrast", type=float, help="visibility of the shortcut cue")
    g.add_argument(
        "--test-shortcut",
        choices=["independent", "reversed", "same"],
        help="how the cue relates to the label in test (independent: no shortcut to exploit)",
    )
    g.add_argument(
        "--map-quality", type=float, help="1: human-like maps on the evidence; lower: noisier"
    )
    g.add_argument("--train-subsets", nargs="+", help="face: generators in train/val")
    g.set_defaults(func=cmd_generate)


def _add_prepare(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="validate a manifest and store images/maps as memory-mapped arrays",
        description="Either --config CFG --dataset NAME, or --manifest CSV --out DIR --image-size N.",
    )
    p.add_argument("--config", help="config YAML")
    p.add_argument("--dataset", help="dataset name in the config")
    p.add_argument("--manifest", help="manifest CSV (split,label,image,saliency,subset)")
    p.add_argument("--out", help="output folder (prepared dataset)")
    p.add_argument("--image-size", type=int, help="side of the stored square images")
    p.add_argument(
        "--cam-grids", type=int, nargs="*", default=[], help="CAM grid sizes to store maps at"
    )
    p.add_argument(
        "--image-bits",
        default="auto",
        help="bit depth that >8-bit integer images are scaled by (8..16), or auto (default: the "
        "smallest of 8/10/12/14/16 bits holding each image's maximum); docs/data.md §3",
    )
    p.add_argument(
        "--allow-cross-split-duplicates",
        action="store_true",
        help="keep a picture that appears in two splits (a counted warning instead of an error)",
    )
    p.add_argument(
        "--classes",
        help="K-class manifest: the class names in label order, comma-separated (e.g. "
        "normal,chf,pneumonia); labels are these names or their indices (docs/data.md)",
    )
    p.set_defaults(func=cmd_prepare)


def _add_import(subparsers: Any) -> None:
    """`import cyborg | fourcol | fixations | regions`."""
    imp = subparsers.add_parser(
        "import", help="convert a CSV, fixations or drawn regions into a manifest (+ maps)"
    )
    sub = imp.add_subparsers(
        dest="layout", required=True, metavar="{cyborg,fourcol,fixations,regions}"
    )
    _add_cyborg(sub)
    _add_fourcol(sub)
    from salience.data.mapimport_cli import add_map_importers

    add_map_importers(sub)


def _add_cyborg(sub: Any) -> None:
    c = sub.add_parser(
        "cyborg", help="CYBORG: headerless split,class,relative_path + heatmap folder"
    )
    c.add_argument("--csv", action="append", required=True, help="CYBORG CSV (repeatable)")
    c.add_argument(
        "--test-csv",
        action="append",
        default=[],
        help="CSV whose rows all go to test; subset = file stem (repeatable: one per generator)",
    )
    c.add_argument("--data-root", required=True, help="prefix of the CSV's relative paths")
    c.add_argument(
        "--heatmaps",
        help="folder of heatmaps named like the images (any image extension; subfolders may mirror the image folders)",
    )
    c.add_argument(
        "--out", required=True, help="manifest to write (paths become relative to its folder)"
    )
    c.add_argument(
        "--split-map",
        nargs="*",
        default=[],
        help="OLD=NEW, e.g. test=val for CYBORG's original.csv",
    )
    c.add_argument(
        "--label-map",
        nargs="*",
        default=[],
        help="NAME=0|1 for class names not recognised (NAME=INDEX 0..K-1 for K classes)",
    )
    c.set_defaults(func=cmd_import)


def _add_fourcol(sub: Any) -> None:
    f = sub.add_parser("fourcol", help="split,truth,img_path,saliency_path CSV")
    f.add_argument(
        "--csv",
        required=True,
        help="split,truth,img_path,saliency_path[,subset] CSV (a header row is optional)",
    )
    f.add_argument(
        "--out", required=True, help="manifest to write (paths become relative to its folder)"
    )
    f.add_argument(
        "--root", help="folder relative paths are resolved against (default: the CSV's folder)"
    )
    f.add_argument("--split-map", nargs="*", default=[], help="OLD=NEW")
    f.add_argument(
        "--label-map", nargs="*", default=[], help="NAME=0|1 (NAME=INDEX 0..K-1 for K classes)"
    )
    f.set_defaults(func=cmd_import)


KNOB_ARGS = (
    "seed",
    "image_size",
    "n_train",
    "n_val",
    "n_test",
    "signal_strength",
    "shortcut_strength",
    "shortcut_kind",
    "shortcut_contrast",
    "test_shortcut",
    "map_quality",
    "train_subsets",
)


def cmd_generate(args: argparse.Namespace) -> int:
    from salience.data.generate import generate

    knobs = {k: getattr(args, k) for k in KNOB_ARGS if getattr(args, k, None) is not None}
    if args.config:
        if not args.dataset:
            raise ConfigError("generate --config needs --dataset NAME")
        from salience.data.generate import generate_from_config
        from salience.study import load_config

        cfg = load_config(args.config)
        task = cfg["datasets"].get(args.dataset, {}).get("task")
        if args.task and task and args.task != task:
            raise ConfigError(f"--task {args.task} contradicts datasets.{args.dataset}.task {task}")
        manifest = generate_from_config(cfg, args.dataset, args.out, **knobs)
    else:
        if not args.task or not args.out:
            raise ConfigError(
                "generate needs either --config CFG --dataset NAME, or --task iris|face|chest|gaze3 --out DIR"
            )
        manifest = generate(args.task, args.out, **knobs)
    print(f"generated benchmark: {manifest}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from salience.data.prepare import prepare, prepare_from_config

    if args.config:
        if not args.dataset:
            raise ConfigError("prepare --config needs --dataset NAME")
        from salience.study import load_config

        cfg = load_config(args.config)
        if args.allow_cross_split_duplicates and args.dataset in cfg["datasets"]:
            cfg["datasets"][args.dataset]["allow_cross_split_duplicates"] = True
        out = prepare_from_config(cfg, args.dataset)
    else:
        if not (args.manifest and args.out and args.image_size):
            raise ConfigError(
                "prepare needs either --config CFG --dataset NAME, or --manifest CSV --out DIR --image-size N"
            )
        out = prepare(
            args.manifest,
            args.out,
            args.image_size,
            args.cam_grids,
            image_bits=args.image_bits,
            allow_cross_split_duplicates=args.allow_cross_split_duplicates,
            classes=[c.strip() for c in args.classes.split(",")] if args.classes else None,
        )
    print(f"prepared data: {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from salience.data.importers import import_cyborg, import_fourcol, parse_pairs

    split_map = parse_pairs(args.split_map, "--split-map")
    label_map = parse_pairs(args.label_map, "--label-map")
    if args.layout == "cyborg":
        out = import_cyborg(
            args.csv,
            args.data_root,
            args.heatmaps,
            args.out,
            test_csvs=args.test_csv,
            split_map=split_map,
            label_map=label_map,
        )
    else:
        out = import_fourcol(
            args.csv, args.out, root=args.root, split_map=split_map, label_map=label_map
        )
    print(f"manifest: {out}")
    return 0
