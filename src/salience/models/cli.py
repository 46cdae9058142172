"""`python -m salience weights fetch|list`: the pinned ImageNet files (models/fetch.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_weights(args: argparse.Namespace) -> None:
    from salience.models.fetch import fetch, weight_files

    if args.action == "list":
        files = weight_files(args.backbones, args.dir)
        print(f"folder: {files[0].path.parent}")
        for wf in files:
            print(f"{wf.backbone:16} {wf.path.name:42} {'present' if wf.present else 'missing'}")
        return
    for wf, status in fetch(args.backbones, args.dir, args.mirror, progress=not args.quiet):
        print(f"{wf.backbone}: {status} {wf.path}", file=sys.stdout, flush=True)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `weights` (fetch | list)."""
    p = subparsers.add_parser(
        "weights", help="fetch or list the pinned torchvision ImageNet files (model.weights)"
    )
    p.add_argument(
        "action",
        choices=("fetch", "list"),
        help="fetch: download and verify the pinned files; list: each file and whether present",
    )
    p.add_argument("--backbones", nargs="+", help="default: every backbone with a pinned file")
    p.add_argument("--dir", type=Path, help="folder (default: torch's hub cache, $TORCH_HOME)")
    p.add_argument(
        "--mirror",
        help="base URL replacing https://download.pytorch.org/models (http:// or file://)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_weights)
