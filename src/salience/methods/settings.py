"""Declared method settings (torch-free): each method lists its settings once, with a default, a
kind and a range or choices; `Method.__init__` and config validation check overrides against them.

A `Setting` is plain data so that the method catalogue (`salience.methods.catalogue`) can carry it
to the configuration layer without importing torch (docs/decisions.md, "torch-free configuration
layer"). Errors are one-line `ConfigError`s naming the key, what it must be and the value given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any

from salience.errors import ConfigError

KINDS = ("number", "integer", "bool", "string", "choice", "list")


@dataclass(frozen=True)
class Setting:
    """One method setting.

    kind: "number" (int or float, not bool), "integer", "bool", "string", "choice" (one of
    `choices`) or "list" (each item checked against `item`, a Setting; `length` fixes the count).
    low / high: inclusive bounds for numbers and integers; `low_open` / `high_open` make them
    exclusive (σ > 0, dropout < 1). odd: integers must be odd (kernel sides). nullable: null (None) is accepted too
    (MENTOR's pretrain_epochs: null = train.epochs). doc: one line for docs and `--help`.
    """

    default: Any
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    odd: bool = False
    choices: tuple[Any, ...] | None = None
    item: Setting | None = None
    length: int | None = None
    min_length: int = 0
    nullable: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Setting kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a 'choice' Setting needs its choices")

    # ------------------------------------------------------------------------------- checking
    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this setting, or None when it is acceptable."""
        if value is None and self.nullable:
            return None
        ok = {
            "number": _is_number(value) and math.isfinite(value),
            "integer": _is_number(value) and float(value).is_integer(),
            "bool": isinstance(value, bool),
            "string": isinstance(value, str),
            "choice": value in (self.choices or ()) and not isinstance(value, bool),
            "list": isinstance(value, (list, tuple)),
        }[self.kind]
        if ok and self.kind in ("number", "integer"):
            ok = self._in_range(value)
        if ok and self.kind == "list":
            n = len(value)
            ok = (self.length is None or n == self.length) and n >= self.min_length
            ok = ok and (self.item is None or all(self.item.problem(v) is None for v in value))
        return None if ok else f"must be {self.describe()}, got {value!r}"

    def check(self, key: str, value: Any) -> None:
        """Raise a one-line ConfigError naming `key` when `value` does not fit."""
        why = self.problem(value)
        if why:
            raise ConfigError(f"{key}: {why}")

    def _in_range(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return not self.odd or int(v) % 2 == 1

    def describe(self) -> str:
        """What a value must be, in words ("a number in [0, 1]", "'pow2' or 'square'")."""
        if self.nullable:
            return f"{replace(self, nullable=False).describe()} or null"
        if self.kind == "choice":
            return " or ".join(repr(c) for c in self.choices or ())
        if self.kind == "bool":
            return "true or false"
        if self.kind == "string":
            return "a string"
        if self.kind == "list":
            items = _plural(self.item.describe()) if self.item is not None else "items"
            count = f"{self.length} " if self.length is not None else ""
            least = f" (at least {self.min_length})" if self.min_length else ""
            return f"a list of {count}{items}{least}"
        noun = (
            ("an odd integer" if self.odd else "an integer")
            if self.kind == "integer"
            else "a number"
        )
        return noun + self._range_words()

    def _range_words(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return (
                f" in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}"
                f"{')' if self.high_open else ']'}"
            )
        if lo is not None:
            return f" {'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f" {'<' if self.high_open else '<='} {_num(hi)}"
        return ""

    # ------------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        # a field equal to its dataclass default is left out
        out = {
            f.name: getattr(self, f.name)
            for f in dataclass_fields(self)
            if f.name in ("default", "kind") or getattr(self, f.name) != f.default
        }
        if self.item is not None:
            out["item"] = self.item.to_json()
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Setting:
        data = dict(data)
        if data.get("item") is not None:
            data["item"] = cls.from_json(data["item"])
        if data.get("choices") is not None:
            data["choices"] = tuple(data["choices"])
        return cls(**data)


def check_overrides(method: str, settings: dict[str, Setting], params: dict[str, Any]) -> None:
    """Config overrides `methods.<method>` against the declared settings: unknown keys and values
    that do not fit are one-line ConfigErrors naming the key."""
    unknown = sorted(set(params) - set(settings))
    if unknown:
        raise ConfigError(
            f"methods.{method}.{unknown[0]}: unknown setting; {method} accepts: "
            f"{', '.join(sorted(settings)) or '(none)'}"
        )
    for key, value in params.items():
        settings[key].check(f"methods.{method}.{key}", value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _plural(words: str) -> str:
    for a in ("an ", "a "):
        if words.startswith(a):
            head, _, rest = words[len(a) :].partition(" ")
            return f"{head}s {rest}".strip()
    return words
