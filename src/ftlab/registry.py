"""A named registry: the one place where "a name in the config" becomes "an object".

Registering a name twice is a programming error (ValueError); asking for an unknown name is
a user error (ConfigError naming the config key and every valid choice).

A registry with an entry-point group also holds what installed packages offer: on the first
lookup it loads every Python entry point of that group (`[project.entry-points."ftlab.strategies"]`
in a plugin's pyproject.toml). An entry point names a module, whose import registers its
objects, or an object, registered under the entry point's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Generic, TypeVar

from ftlab.errors import ConfigError

T = TypeVar("T")

PLUGIN_GROUPS = ("ftlab.strategies", "ftlab.architectures", "ftlab.datasets", "ftlab.optimizers",
                 "ftlab.schedules")
"""The entry-point groups ftlab reads: strategies, architecture adapters, datasets,
optimizers, learning-rate schedules."""


class Registry(Generic[T]):
    def __init__(self, config_key: str, plugin_group: str | None = None) -> None:
        self.config_key = config_key
        self.plugin_group = plugin_group
        self._items: dict[str, T] = {}
        self._plugins_loaded = plugin_group is None

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.config_key} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        del self._items[name]

    def get(self, name: str) -> T:
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"{self.config_key}={name!r} is unknown; choose one of: "
                              + ", ".join(self.names())) from None

    def check(self, name: str) -> None:
        self.get(name)

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def load_plugins(self) -> None:
        """Load the entry points of this registry's group, once per process."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # before loading: a plugin's own lookups must not recurse
        for point in entry_points(group=self.plugin_group or ""):
            self._load(point)

    def _load(self, point: EntryPoint) -> None:
        where = f"plugin {point.name!r} ({point.value}, entry point group {self.plugin_group})"
        try:
            item = point.load()
        except Exception as err:  # any failure inside someone else's package
            raise ConfigError(f"{where} failed to load: {type(err).__name__}: {err}; fix or "
                              "uninstall the package that provides it") from None
        if isinstance(item, ModuleType) or item in self._items.values():
            return  # the import registered it
        if point.name in self._items:
            raise ConfigError(f"{where} is named like the existing {self.config_key} "
                              f"{point.name!r}; rename the entry point")
        self._items[point.name] = item
