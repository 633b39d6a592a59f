"""Learning-rate schedules by name, each with its own options: a factor of the step.

A schedule's shape is a pure function of where training is (nanoGPT's `get_lr` idea),
wrapped in `LambdaLR` by `assembly/schedule.py`, so per-group learning rates keep their
ratios, warmup (the schedule section's own keys) composes with every shape, and the
scheduler's state is one integer that resumes exactly. Another package adds one through
the entry-point group `ftlab.schedules` (docs/plugins.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ftlab.config.loading import register_option_check
from ftlab.config.options import option_values, parse_choice_options
from ftlab.config.schema import ScheduleConfig, check_number
from ftlab.registry import Registry

Shape = Callable[[Any, int, float, float], float]
"""(options, epoch index after warmup, fractional epochs after warmup, epochs after warmup)
-> the factor on every group's initial learning rate."""


@dataclass(frozen=True)
class Schedule:
    """One registered schedule."""

    options: type
    """Its options dataclass (fields documented, checked in `__post_init__`)."""
    shape: Shape
    describe: Callable[[Any], str] = lambda options: ""
    """Its options in a few words, for reports ("gamma 0.9 per epoch")."""


SCHEDULES: Registry[Schedule] = Registry("schedule.name", plugin_group="ftlab.schedules")

COMMON = ("name", "warmup_epochs", "warmup_start_factor")
"""The schedule section's own keys; every other key is an option of the chosen schedule."""


def register_schedule(name: str, options: type, describe: Callable[[Any], str] | None = None
                      ) -> Callable[[Shape], Shape]:
    """Decorator: register `shape` as schedule `name` with its options dataclass."""
    def register(shape: Shape) -> Shape:
        SCHEDULES.register(name, Schedule(options, shape, describe or (lambda o: "")))
        return shape
    return register


@dataclass(frozen=True)
class ConstantOptions:
    """The constant schedule has no options."""


@dataclass(frozen=True)
class ExponentialOptions:
    """Exponential decay, once per epoch (as torch's ExponentialLR stepped at epoch ends)."""

    gamma: float = 0.95
    """Factor applied once per epoch."""

    def __post_init__(self) -> None:
        check_number("schedule.gamma", self.gamma, low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class StepOptions:
    """Step decay (as torch's StepLR stepped at epoch ends)."""

    step_size: int = 10
    """Epochs between decays."""
    step_gamma: float = 0.1
    """Factor applied every step_size epochs."""

    def __post_init__(self) -> None:
        check_number("schedule.step_size", self.step_size, low=1, high=1_000_000)
        check_number("schedule.step_gamma", self.step_gamma, low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class CosineOptions:
    """Cosine decay, smooth over steps."""

    min_lr_factor: float = 0.0
    """Final learning rate as a fraction of the initial one, reached at the last step."""

    def __post_init__(self) -> None:
        check_number("schedule.min_lr_factor", self.min_lr_factor, low=0.0, high=1.0)


register_schedule("constant", ConstantOptions)(lambda o, epoch, progress, total: 1.0)
register_schedule("exponential", ExponentialOptions,
                  lambda o: f"gamma {o.gamma:g} per epoch")(
    lambda o, epoch, progress, total: o.gamma ** epoch)
register_schedule("step", StepOptions,
                  lambda o: f"x{o.step_gamma:g} every {o.step_size} epochs")(
    lambda o, epoch, progress, total: o.step_gamma ** (epoch // o.step_size))
register_schedule("cosine", CosineOptions, lambda o: f"to x{o.min_lr_factor:g}")(
    lambda o, epoch, progress, total: o.min_lr_factor + (1 - o.min_lr_factor) * 0.5
    * (1 + math.cos(math.pi * min(progress / total, 1.0) if total > 0 else 0.0)))


LEGACY = {"gamma": ExponentialOptions, "step_size": StepOptions, "step_gamma": StepOptions,
          "min_lr_factor": CosineOptions}
"""Keys every schedule section had before schedules had their own options, with the options
that declare them: checked as before, and ignored by a schedule that does not declare them,
as they were."""


def schedule_options(config: ScheduleConfig) -> Any:
    """The chosen schedule's options object, checked (one line naming a wrong key)."""
    schema = SCHEDULES.get(config.name).options
    return parse_choice_options("schedule", config.name, schema, config.options, COMMON,
                                LEGACY)


def resolved_schedule(config: ScheduleConfig) -> ScheduleConfig:
    """`config` with its schedule's options written out in full (defaults included)."""
    return replace(config, options=option_values(schedule_options(config)))


def describe_schedule(config: ScheduleConfig) -> str:
    """"exponential gamma 0.9 per epoch, 1 warmup epochs": for reports."""
    detail = SCHEDULES.get(config.name).describe(schedule_options(config))
    warmup = f", {config.warmup_epochs:g} warmup epochs" if config.warmup_epochs else ""
    return f"{config.name} {detail}{warmup}".strip()



def _check_when_loaded(config: Any) -> None:
    """At load time, the options of a known schedule.name (an unknown name is reported by
    `assembly.check_config`, with the choices)."""
    if config.name in SCHEDULES:
        schedule_options(config)


register_option_check("schedule", _check_when_loaded)
