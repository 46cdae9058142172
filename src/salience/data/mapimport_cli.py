"""`python -m salience import fixations | regions` (added to `import` by salience.data.cli)."""

from __future__ import annotations

import argparse
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels", required=True, help="CSV image,split,label[,subset][,path]; image = the id"
    )
    p.add_argument(
        "--images", help="folder searched for <id>.png/.jpg/... (unless --labels has path)"
    )
    p.add_argument(
        "--out", required=True, help="manifest to write (in a folder holding the images)"
    )
    p.add_argument("--maps", help="folder for the PNG maps (default: <manifest folder>/maps)")
    p.add_argument("--split-map", nargs="*", default=[], help="OLD=NEW")
    p.add_argument(
        "--label-map", nargs="*", default=[], help="NAME=0|1 (NAME=INDEX 0..K-1 for K classes)"
    )


def add_map_importers(sub: Any) -> None:
    """Add the `fixations` and `regions` layouts to the `import` subparsers object."""
    f = sub.add_parser(
        "fixations",
        help="eye-tracking fixations (egd-cxr, REFLACX, image,x,y,duration) to maps",
        description="Rasterise fixations into duration-weighted Gaussian maps (docs/data.md §2).",
    )
    f.add_argument(
        "--fixations",
        action="append",
        required=True,
        help="egd-cxr fixations.csv, REFLACX metadata_phase_<n>.csv, or image,x,y,duration CSV (repeatable)",
    )
    f.add_argument(
        "--layout",
        choices=["auto", "egd", "reflacx", "generic"],
        default="auto",
        help="fixation table layout (auto: from the header; docs/data.md)",
    )
    f.add_argument(
        "--sigma",
        type=float,
        help="Gaussian σ in image pixels (default: egd 150, REFLACX 1° per fixation; generic: required)",
    )
    f.add_argument(
        "--outside",
        choices=["drop", "clip"],
        default="drop",
        help="fixations outside the image: left out (drop) or moved to the edge (clip); counted",
    )
    f.add_argument(
        "--weight",
        choices=["duration", "count"],
        default="duration",
        help="weight of a fixation: its duration, or 1 each (count; docs/decisions.md)",
    )
    f.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out NaN/negative rows (counted)"
    )
    _common(f)
    f.set_defaults(func=cmd_fixations)
    r = sub.add_parser(
        "regions",
        help="drawn polygons/boxes (COCO JSON, box CSV) to maps",
        description="Fill COCO polygons/boxes or image,x_min,y_min,x_max,y_max boxes into maps.",
    )
    r.add_argument(
        "--annotations", action="append", required=True, help="COCO .json or box .csv (repeatable)"
    )
    r.add_argument("--sigma", type=float, help="Gaussian softening σ in pixels (default: none)")
    _common(r)
    r.set_defaults(func=cmd_regions)


def _maps(args: argparse.Namespace) -> dict[str, Any]:
    from salience.data.importers import parse_pairs

    return {
        "images": args.images,
        "sigma": args.sigma,
        "maps_dir": args.maps,
        "split_map": parse_pairs(args.split_map, "--split-map"),
        "label_map": parse_pairs(args.label_map, "--label-map"),
    }


def cmd_fixations(args: argparse.Namespace) -> int:
    from salience.data.fixations import import_fixations

    out, mdir, n = import_fixations(
        args.fixations,
        args.labels,
        args.out,
        layout=args.layout,
        outside=args.outside,
        weight=args.weight,
        skip_bad_rows=args.skip_bad_rows,
        **_maps(args),
    )
    print(f"fixation maps: {n} in {mdir}\nmanifest: {out}")
    return 0


def cmd_regions(args: argparse.Namespace) -> int:
    from salience.data.regions import import_regions

    out, mdir, n = import_regions(args.annotations, args.labels, args.out, **_maps(args))
    print(f"region maps: {n} in {mdir}\nmanifest: {out}")
    return 0
