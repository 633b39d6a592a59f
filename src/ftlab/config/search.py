"""Search spaces: the ranges a hyperparameter search draws a setting from.

Strategies declare theirs beside their options (`Strategy.search_space`); suite files
override them by dotted key. These are plain frozen dataclasses, so nothing below the tuner
needs a search library: the tuner turns them into its library's distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

from ftlab.errors import ConfigError


@dataclass(frozen=True)
class FloatRange:
    """A real value in [low, high]; `log` draws it uniformly on a log scale (learning rates)."""

    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")

    def check(self, key: str) -> None:
        _check_bounds(key, self.low, self.high)
        if self.log and self.low <= 0:
            raise ConfigError(f"search range of {key} is log-scaled but starts at {self.low:g}; "
                              "a log range needs low > 0")


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (inclusive), in steps of `step`."""

    low: int
    high: int
    step: int = 1

    def describe(self) -> str:
        return f"{self.low}..{self.high}" + (f" step {self.step}" if self.step != 1 else "")

    def check(self, key: str) -> None:
        _check_bounds(key, self.low, self.high)
        if self.step < 1:
            raise ConfigError(f"search range of {key} has step {self.step}; use a step >= 1")


@dataclass(frozen=True)
class Choice:
    """One of a list of values (numbers, strings, booleans, null)."""

    values: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.values))

    def check(self, key: str) -> None:
        if not self.values:
            raise ConfigError(f"search range of {key} is an empty list of choices; give at "
                              "least one value")


SearchRange = Union[FloatRange, IntRange, Choice]


def parse_range(key: str, spec: Any) -> SearchRange:
    """A range from its suite-file form: `[low, high]`, `{low, high, log, step}` or
    `{choices: [...]}`. Integers on both ends give an IntRange, anything else a FloatRange.
    """
    if isinstance(spec, (SearchRange.__args__)):  # type: ignore[attr-defined]
        spec.check(key)
        return spec
    if isinstance(spec, dict) and set(spec) == {"choices"} and isinstance(spec["choices"], list):
        found: SearchRange = Choice(tuple(spec["choices"]))
    elif isinstance(spec, (list, tuple)) and len(spec) == 2:
        found = _numeric(key, spec[0], spec[1], {})
    elif isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}:
        found = _numeric(key, spec["low"], spec["high"], spec)
    else:
        raise ConfigError(f"search range of {key} is {spec!r}; write [low, high], "
                          "{low: L, high: H, log: true} or {choices: [a, b, ...]}")
    found.check(key)
    return found


def _numeric(key: str, low: Any, high: Any, extra: dict[str, Any]) -> SearchRange:
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"search range of {key} has bound {value!r}; bounds are numbers")
    if isinstance(low, int) and isinstance(high, int) and not extra.get("log"):
        return IntRange(low, high, int(extra.get("step", 1)))
    if "step" in extra:
        raise ConfigError(f"search range of {key} has a step but real bounds; give integer "
                          "bounds for a stepped range")
    return FloatRange(float(low), float(high), bool(extra.get("log", False)))


def _check_bounds(key: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"search range of {key} is [{low:g}, {high:g}]; bounds must be finite")
    if low > high:
        raise ConfigError(f"search range of {key} is inverted ([{low:g}, {high:g}]); write it as "
                          f"[{high:g}, {low:g}]")
    if low == high:
        raise ConfigError(f"search range of {key} is empty ([{low:g}, {high:g}]); widen it or "
                          "set the value as an override instead")
