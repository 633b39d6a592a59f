"""Reading YAML with bounds: every YAML text ftlab reads (experiment configs, suite files, a
run's config.yaml, override values) passes through `parse_yaml` or `read_yaml`.

`yaml.safe_load` itself is fast on an "alias bomb" (nine levels of `&a [*b, *b, ...]`): the
aliases become shared references. The cost comes later, when OmegaConf or a YAML dump walks
the structure and copies every reference, 10^9 nodes for a few hundred bytes. So before
anything is constructed, one pass over the parser's events counts the nodes the document
*expands* to — an alias counts as the whole node it names — and stops at the first node past
the limit. The pass is linear in the text and uses no recursion; nesting depth is bounded
too, because PyYAML's composer and constructor recurse once per level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ftlab.errors import ConfigError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML was built with it (10x faster); same events either way."""


@dataclass(frozen=True)
class YamlLimits:
    """What a YAML text ftlab reads may hold. A config is ~150 nodes and a large suite file a
    few thousand, so these only stop files that are hostile or not configs at all."""

    max_bytes: int = 1 << 20
    """File size (1 MiB)."""
    max_nodes: int = 20_000
    """Scalars and collections once every alias is expanded."""
    max_depth: int = 64
    """Nested collections."""


LIMITS = YamlLimits()


def read_yaml(path: str | Path, what: str = "YAML file", limits: YamlLimits = LIMITS) -> Any:
    """The document of the YAML file `path` (None when empty), within `limits`.

    Raises:
        ConfigError: one line naming the file: missing, too large, not UTF-8, not YAML, or an
            expansion past the limits.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise ConfigError(f"{what} {path} is {size:,} bytes; ftlab reads YAML files of at most "
                          f"{limits.max_bytes:,} bytes: is it really a config?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be read ({err.strerror or err})") from None
    return parse_yaml(text, f"{what} {path}", limits)


def parse_yaml(text: str, origin: str, limits: YamlLimits = LIMITS) -> Any:
    """`yaml.safe_load(text)` once `check_yaml` has passed; `origin` starts every error."""
    check_yaml(text, origin, limits)
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin} is not valid YAML ({_first_line(err)})") from None
    except RecursionError:  # unreachable within max_depth; kept as the last line of defence
        raise ConfigError(f"{origin} is nested too deeply") from None


def check_yaml(text: str, origin: str, limits: YamlLimits = LIMITS) -> None:
    """Refuse `text` if it expands past `limits` (see the module docstring), without building
    it. Syntax errors are left to the loader, which reports them with their position."""
    if len(text) > limits.max_bytes:
        raise ConfigError(f"{origin} is {len(text):,} characters; at most "
                          f"{limits.max_bytes:,} are read")
    counter = _ExpansionCounter(origin, limits)
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            counter.add(event)
    except yaml.YAMLError:
        return


class _ExpansionCounter:
    """Counts expanded nodes event by event: an anchored node's size is known once it ends,
    and each alias to it adds that size."""

    def __init__(self, origin: str, limits: YamlLimits) -> None:
        self.origin, self.limits = origin, limits
        self.nodes = 0
        self.open: list[tuple[str | None, int]] = []
        """Collections being read: (anchor, node count when they started)."""
        self.sizes: dict[str, int] = {}

    def add(self, event: yaml.Event) -> None:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self._count(1)
            self.open.append((event.anchor, self.nodes - 1))
            if len(self.open) > self.limits.max_depth:
                raise ConfigError(f"{self.origin} nests more than {self.limits.max_depth} "
                                  "levels of lists or mappings; ftlab configs need a few")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, start = self.open.pop()
            if anchor is not None:
                self.sizes[anchor] = self.nodes - start
        elif isinstance(event, yaml.ScalarEvent):
            self._count(1)
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor)

    def _alias(self, anchor: str) -> None:
        if any(name == anchor for name, _ in self.open):
            raise ConfigError(f"{self.origin}: alias *{anchor} refers to a node that "
                              "contains it (a recursive structure); remove the alias")
        if anchor not in self.sizes:
            return  # an undefined alias: the loader reports it with its position
        self._count(self.sizes[anchor])

    def _count(self, nodes: int) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise ConfigError(f"{self.origin} expands to more than "
                              f"{self.limits.max_nodes:,} values (YAML aliases such as *name "
                              "repeat whole nodes); write the values out or remove the "
                              "aliases")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
