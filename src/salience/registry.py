"""A tiny name → factory registry (timm's `register_model` pattern) shared by backbones and methods."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from salience.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; `register` is a decorator, `get` fails with a one-line suggestion."""

    def __init__(self, kind: str, required: tuple[str, ...] = ()) -> None:
        """`required`: class attributes a registered class must set to a non-empty value (methods
        need a display `label`); a class without one is refused at registration."""
        self.kind = kind
        self.required = required
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering `obj` under `name`; a registered class gets `name` as its `name`
        attribute (the registry is the one place a method's name is written)."""

        def deco(obj: T) -> T:
            # One line (ConfigError; the CLI exits 2) instead of a traceback through the import
            # machinery: the usual cause is a user's method file reusing a shipped name.
            if name in self._items:
                raise ConfigError(
                    f"{self.kind} {name!r} is registered twice: by {_where(self._items[name])} "
                    f"and by {_where(obj)}; give one of them another name"
                )
            missing = [
                a for a in self.required if isinstance(obj, type) and not getattr(obj, a, "")
            ]
            if missing:
                raise ConfigError(
                    f"{self.kind} {name!r} ({_where(obj)}) has no {missing[0]}; set "
                    f'{missing[0]} = "..." in the class'
                )
            if isinstance(obj, type):
                obj.name = name
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _where(obj: object) -> str:
    """module.QualName of a registered object (which file to look at)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def unknown(kind: str, name: str, known) -> ConfigError:
    """The one-line error for a name that is not registered, with the closest match."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; choose one of: {', '.join(sorted(known))}")
