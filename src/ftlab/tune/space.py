"""The search space of one strategy: its own declaration, then the suite file's changes.

A suite's `tune.space` applies to every strategy (e.g. `optim.weight_decay` for all) and
`tune.strategies.NAME.space` to one; a key set to null drops it from the search (the config
value is used). Keys are checked against the experiment config and the strategy's options,
so a hyperparameter a strategy does not have is refused before any trial runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ftlab.config import ExperimentConfig
from ftlab.config.search import SearchRange, parse_range
from ftlab.errors import ConfigError
from ftlab.optimization import OPTIMIZERS, SCHEDULES
from ftlab.strategies import strategy_class

NOT_SEARCHED = ("strategy.name", "train.seed", "data.split_seed", "train.output_dir",
                "train.run_name", "train.epochs")
"""Keys a search must not draw: they name the run or its budget, not a setting that trains."""


def strategy_space(name: str, *changes: Mapping[str, Any] | None) -> dict[str, SearchRange]:
    """The search space of strategy `name` after applying `changes` in order."""
    space: dict[str, SearchRange] = dict(strategy_class(name).search_space)
    for change in changes:
        for key, spec in (change or {}).items():
            if spec is None:
                space.pop(key, None)
            else:
                space[key] = parse_range(key, spec)
    for key in space:
        check_key(name, key)
    if not space:
        raise ConfigError(f"the search space of {name} is empty; keep at least one key "
                          "(optim.lr is the usual one)")
    return space


def check_key(strategy: str, key: str) -> None:
    """A searched key names a setting of the config, or an option of `strategy`."""
    if key in NOT_SEARCHED:
        raise ConfigError(f"tune.space: {key} cannot be searched (it names the run or its "
                          "budget); set it in the suite's overrides instead")
    section, _, field = key.partition(".")
    if section == "strategy":
        options = [f.name for f in dataclasses.fields(strategy_class(strategy).Options)]
        if field not in options and field != "norm_stats":
            raise ConfigError(f"tune.space: {key} is not a hyperparameter of strategy "
                              f"{strategy!r} (its options: {', '.join(options) or 'none'}); "
                              "remove it or move it to that strategy's space")
        return
    sections = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    if section not in sections or "." in field or field not in {
            f.name for f in dataclasses.fields(sections[section].default_factory())
            } | _entry_options(section):
        raise ConfigError(f"tune.space: {key} is not a config key (section.key, for example "
                          "optim.lr or optim.weight_decay)")


def _entry_options(section: str) -> set[str]:
    """The options any registered optimizer (or schedule) declares: which one a trial uses
    is set in the suite's overrides, and its own check names a key it does not accept."""
    registry = {"optim": OPTIMIZERS, "schedule": SCHEDULES}.get(section)
    if registry is None:
        return set()
    return {f.name for name in registry for f in dataclasses.fields(registry.get(name).options)}


def describe(space: Mapping[str, SearchRange]) -> dict[str, dict[str, Any]]:
    """The space as plain data: what a study records to recognise its own space later."""
    return {key: {"kind": type(spec).__name__, **dataclasses.asdict(spec)}
            for key, spec in sorted(space.items())}


def overrides_for(params: Mapping[str, Any]) -> list[str]:
    """Drawn values as `key=value` overrides (YAML flow syntax for lists)."""
    return [f"{key}={_yaml(value)}" for key, value in params.items()]


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)

