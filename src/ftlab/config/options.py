"""Options that belong to one registered choice (an optimizer, a schedule, a strategy).

A config section keeps the chosen entry's own settings as written beside its `name`
(`optim.momentum=0.8` beside `optim.name=sgd`), since the schema cannot know what plugins
register; here they meet that entry's options dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Mapping
from typing import Any

from ftlab.config.loading import load_section
from ftlab.errors import ConfigError


def parse_choice_options(section: str, name: str, schema: type, values: Mapping[str, Any],
                         common: Collection[str], legacy: Mapping[str, type] | None = None
                         ) -> Any:
    """`values` checked into `schema`, the options dataclass of `section`.name=`name`.

    `common`: the section's own keys, listed in the message for an unknown key. `legacy`:
    keys that earlier versions of ftlab kept for every entry of the section (config files
    and run folders written then list them all), each with the built-in options dataclass
    that declares it: an entry that does not declare one never used it, so it is checked as
    it always was, then dropped instead of refused.
    """
    own = [f.name for f in dataclasses.fields(schema)]
    legacy = legacy or {}
    unknown = [key for key in values if key not in own and key not in legacy]
    if unknown:
        raise ConfigError(_unknown(section, unknown[0], [*common, *own]))
    for owner in {legacy[key] for key in values if key not in own}:
        load_section(owner, {k: v for k, v in values.items()
                             if k not in own and legacy.get(k) is owner}, f"{section}.")
    return load_section(schema, {k: v for k, v in values.items() if k in own}, f"{section}.")


def _unknown(section: str, key: str, valid: list[str]) -> str:
    """As `load_config` names an unknown key (with OmegaConf's did-you-mean)."""
    close = difflib.get_close_matches(key, valid, n=2)
    hint = (" (did you mean " + " or ".join(f"'{section}.{c}'" for c in close) + "?)"
            if close else "")
    return (f"unknown config key '{section}.{key}'{hint}; valid keys in '{section}': "
            + ", ".join(valid))


def option_values(options: Any) -> dict[str, Any]:
    """Every field of an options object as plain YAML values (tuples as lists)."""
    return {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}


def plain(value: Any) -> Any:
    """A value as YAML/JSON would hold it: dataclasses as mappings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value
