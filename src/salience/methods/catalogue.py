"""The method catalogue: what the configuration layer, the workflow and the reports need to know
about each registered method (name, display label, stages, settings, map use, networks), without
importing torch.

The registry (`salience.methods.base.METHODS`) is the only list of methods; this catalogue is a
cache of it. `catalogue.json` beside this module holds the cache and the sha256 of the method
modules' sources it was built from; while that hash matches, `load()` reads the JSON (planning a
study never imports torch: docs/decisions.md, "torch-free configuration layer"). When a method
file was added or edited, the hash differs and `load()` imports the registry instead, so a new
method works at once; `python -m salience methods --write-catalogue` refreshes the JSON, and a test
keeps the committed one current.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from salience.io import write_text
from salience.methods.settings import Setting

PACKAGE_DIR = Path(__file__).resolve().parent
CATALOGUE_PATH = PACKAGE_DIR / "catalogue.json"


@dataclass(frozen=True)
class MethodInfo:
    """A registered method as the planning and reporting layers see it (no torch objects)."""

    name: str
    label: str
    stages: tuple[str, ...] = ("train",)
    settings: dict[str, Setting] = field(default_factory=dict)
    uses_maps: bool = True
    maps_at_test: bool = False
    own_network: str | None = None
    #: False when the method's model has no CAM head (no CAM figures; `Method.cam_head`)
    cam_head: bool = True
    supported_backbones: tuple[str, ...] | None = None
    unsupported_reason: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: s.default for k, s in self.settings.items()}

    def supports(self, backbone: str) -> bool:
        return self.supported_backbones is None or backbone in self.supported_backbones

    @classmethod
    def from_class(cls, method: type) -> MethodInfo:
        """The catalogue entry of a registered `Method` subclass."""
        backbones = method.supported_backbones
        return cls(
            name=method.name,
            label=method.label,
            stages=tuple(method.stages),
            settings=dict(method.settings),
            uses_maps=method.uses_maps,
            maps_at_test=method.maps_at_test,
            own_network=method.own_network,
            cam_head=method.cam_head,
            supported_backbones=None if backbones is None else tuple(backbones),
            unsupported_reason=method.unsupported_reason,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "stages": list(self.stages),
            "settings": {k: s.to_json() for k, s in self.settings.items()},
            "uses_maps": self.uses_maps,
            "maps_at_test": self.maps_at_test,
            "own_network": self.own_network,
            "cam_head": self.cam_head,
            "supported_backbones": (
                None if self.supported_backbones is None else list(self.supported_backbones)
            ),
            "unsupported_reason": self.unsupported_reason,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> MethodInfo:
        backbones = data["supported_backbones"]
        return cls(
            name=name,
            label=data["label"],
            stages=tuple(data["stages"]),
            settings={k: Setting.from_json(v) for k, v in data["settings"].items()},
            uses_maps=data["uses_maps"],
            maps_at_test=data["maps_at_test"],
            own_network=data["own_network"],
            cam_head=data["cam_head"],
            supported_backbones=None if backbones is None else tuple(backbones),
            unsupported_reason=data["unsupported_reason"],
        )


def sources_sha256() -> str:
    """sha256 over the method modules' file names and bytes (the catalogue's validity key)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def load() -> dict[str, MethodInfo]:
    """Every registered method by name: from catalogue.json while it is current, else from the
    registry (which imports torch and every method module)."""
    try:
        data = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if data is not None and data.get("sources_sha256") == sources_sha256():
        return {n: MethodInfo.from_json(n, d) for n, d in data["methods"].items()}
    return from_registry()


def from_registry() -> dict[str, MethodInfo]:
    """The catalogue built from the registry itself (imports every method module)."""
    from salience.methods.base import METHODS, import_all

    import_all()
    return {n: MethodInfo.from_class(METHODS.get(n)) for n in METHODS.names()}


def render() -> str:
    """catalogue.json's text for the current sources (sorted, stable, one trailing newline)."""
    methods = {n: info.to_json() for n, info in from_registry().items()}
    doc = {
        "about": "Generated by `python -m salience methods --write-catalogue`; do not edit.",
        "sources_sha256": sources_sha256(),
        "methods": methods,
    }
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def write(path: Path = CATALOGUE_PATH) -> Path:
    """Rewrite catalogue.json (temp file, then rename)."""
    write_text(path, render())
    load.cache_clear()
    return path


def get(name: str) -> MethodInfo:
    """The catalogue entry of `name`; unknown names are a one-line ConfigError with a suggestion."""
    methods = load()
    if name not in methods:
        from salience.registry import unknown

        raise unknown("method", name, methods)
    return methods[name]


def names() -> list[str]:
    return sorted(load())


def label(name: str) -> str:
    """The display label of a method (its name when it is not registered)."""
    info = load().get(name)
    return info.label if info is not None and info.label else name
