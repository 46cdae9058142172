"""`python -m salience methods`: the registered methods, their stages and declared settings; with
`--write-catalogue` / `--check-catalogue`, the torch-free catalogue (methods/catalogue.py)."""

from __future__ import annotations

import argparse

from salience.errors import ConfigError


def cmd_methods(args: argparse.Namespace) -> None:
    from salience.methods import catalogue

    if args.write_catalogue:
        print(f"wrote {catalogue.write()}")
        return
    if args.check_catalogue:
        current = catalogue.CATALOGUE_PATH.read_text(encoding="utf-8")
        if current != catalogue.render():
            raise ConfigError(
                f"{catalogue.CATALOGUE_PATH}: out of date with the method modules; run "
                f"`python -m salience methods --write-catalogue`"
            )
        print(f"{catalogue.CATALOGUE_PATH}: current")
        return
    for name, info in catalogue.load().items():
        flags = ", ".join(
            f
            for f, on in (
                ("reads human maps", info.uses_maps),
                ("maps at test time", info.maps_at_test),
                (f"own network {info.own_network}", info.own_network),
            )
            if on
        )
        print(
            f"{name:12} {info.label}  [stages: {', '.join(info.stages)}{'; ' + flags if flags else ''}]"
        )
        for key, s in info.settings.items():
            print(f"    {key:18} {s.default!r:28} {s.describe()}")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `methods`."""
    p = subparsers.add_parser(
        "methods", help="list the registered methods with their stages and settings"
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--write-catalogue",
        action="store_true",
        help="rewrite src/salience/methods/catalogue.json from the registry",
    )
    what.add_argument(
        "--check-catalogue",
        action="store_true",
        help="exit 2 when catalogue.json does not match the method modules",
    )
    p.set_defaults(func=cmd_methods)
