"""A strategy's own settings: checked against its `Options` dataclass, completed, described.

Configs keep a strategy's options as written (`strategy.k=5` beside `strategy.name`); here
they meet the chosen strategy's `Options`, so a key another strategy reads is refused with
the keys this one accepts, and a wrong type or value names its `strategy.` key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftlab.config.loading import load_section
from ftlab.config.options import option_values, plain
from ftlab.errors import ConfigError

__all__ = ["NoOptions", "option_values", "parse_options", "plain"]


@dataclass(frozen=True)
class NoOptions:
    """The strategy has no settings besides strategy.name and strategy.norm_stats."""


def parse_options(name: str, schema: type, values: Mapping[str, Any],
                  others: Mapping[str, type]) -> Any:
    """`values` checked into `schema`, the options dataclass of strategy `name`.

    A key that only other strategies read is refused, unless it holds that strategy's
    default: run folders written before options were per strategy list every strategy's
    options at their defaults, and such a value cannot change what trains.
    """
    own = [f.name for f in dataclasses.fields(schema)]
    kept = {}
    for key, value in values.items():
        if key in own:
            kept[key] = value
            continue
        users = [other for other, options in others.items() if _has_field(options, key)]
        if any(plain(_default(others[user], key)) == plain(value) for user in users):
            continue
        raise ConfigError(f"strategy.{key} is not used by strategy {name!r} (it is an option "
                          f"of {', '.join(users) or 'no strategy'}); {name} accepts strategy."
                          + ", strategy.".join(["name", "norm_stats", *own])
                          + ": remove it or choose another strategy")
    return load_section(schema, kept, "strategy.")


def _has_field(schema: type, key: str) -> bool:
    return any(f.name == key for f in dataclasses.fields(schema))


def _default(schema: type, key: str) -> Any:
    field = next(f for f in dataclasses.fields(schema) if f.name == key)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING
