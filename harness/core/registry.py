"""One small typed registry for the things that configs name (families, prompt pools, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from harness.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a config name to an object; unknown names fail with the list of known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)
