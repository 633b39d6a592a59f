"""A named registry: the one place where "a name in the config" becomes "an object".

Registering a name twice is a programming error (ValueError); asking for an unknown name is
a user error (ConfigError naming the config key and every valid choice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ftlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, config_key: str) -> None:
        self.config_key = config_key
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.config_key} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        del self._items[name]

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"{self.config_key}={name!r} is unknown; choose one of: "
                              + ", ".join(self.names())) from None

    def check(self, name: str) -> None:
        self.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
