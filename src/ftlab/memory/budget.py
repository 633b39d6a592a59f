"""`ftlab plan`: the largest batch (and resolution) at which each strategy's training step
fits a memory budget, every answer a measured step.

A step's peak grows almost exactly affinely with the batch (activations scale with it;
parameters, gradients and optimizer state do not) and with the square of the resolution.
So two small measured steps give a line, the line gives a first guess, and each further
measurement refits the line through the two measured points nearest the answer, until the
largest measured batch that fits and the smallest that does not are neighbours (or the line
through measured points puts the next batch over the budget, when `confirm` is off). A
search thus measures three to five steps instead of bisecting a thousand batch sizes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ftlab.config import PlanConfig, StrategyConfig
from ftlab.config.sizes import format_size
from ftlab.errors import ConfigError
from ftlab.memory.probe import StepProbe, TooFewValues, plan_spec
from ftlab.runtime import resolve_device
from ftlab.strategies import get_strategy, strategy_names

log = logging.getLogger("ftlab")


@dataclass(frozen=True)
class Point:
    """One measured training step."""

    batch_size: int
    resolution: int
    peak: int


@dataclass(frozen=True)
class Answer:
    """The largest value of one setting whose step fits, with how sure the search is."""

    largest: int | None
    """None: not even the smallest value fits."""
    capped: bool
    """The largest value searched fits (the answer is at least `largest`)."""
    next_measured: bool
    """The next value was measured over the budget (else the fitted line puts it there)."""


@dataclass(frozen=True)
class PlanRow:
    strategy: str
    options: dict[str, Any]
    execution: str
    trainable_params: int
    batch: Answer
    """Largest batch at `PlanConfig.resolution`."""
    resolution: Answer | None
    """Largest resolution at `PlanConfig.batch_size`, when one is given."""
    points: tuple[Point, ...]
    method: str
    same_as: str | None = None
    """Another planned strategy whose training step is this one's (the same parameters train
    in the same modes, with no loss term of its own): its measurements are this row's."""

    def peak_at(self, batch_size: int, resolution: int) -> int | None:
        return next((p.peak for p in self.points
                     if (p.batch_size, p.resolution) == (batch_size, resolution)), None)


def largest_fitting(measure: Callable[[int], int], low: int, high: int,
                    size: Callable[[int], float], budget: int, *, confirm: bool = True
                    ) -> tuple[Answer, dict[int, int]]:
    """The largest x in [low, high] whose measured peak is within `budget`, for a peak that
    grows affinely in size(x); returns it with every (x, peak) measured. With `confirm`, the
    x after the answer is measured too (unless the answer is `high`)."""
    known: dict[int, int] = {}

    def at(x: int) -> int:
        if x not in known:
            known[x] = measure(x)
        return known[x]

    if at(low) > budget:
        return Answer(None, False, True), known
    if high > low:
        at(low + 1)
    bracket = high + 1 - low
    for _ in range(40):  # two or three on a real step; bisection bounds a bent one
        fit = max(x for x, peak in known.items() if peak <= budget)
        over = min((x for x, peak in known.items() if peak > budget), default=high + 1)
        if over == fit + 1:
            break
        guess = _predict(known, fit, over, size, budget)
        if guess <= fit and not confirm:
            break
        if over - fit > bracket // 2 and over <= high:  # the line is off: halve instead
            guess = (fit + over) // 2
        bracket = over - fit
        at(max(guess, fit + 1))
    fit = max(x for x, peak in known.items() if peak <= budget)
    return Answer(fit, fit == high, known.get(fit + 1, 0) > budget), known


def _predict(known: dict[int, int], fit: int, over: int, size: Callable[[int], float],
             budget: int) -> int:
    """The largest x in (fit, over) that a line through `fit` keeps within budget (`fit`
    when none): the line to `over` where it was measured (interpolation, which a line from
    the smallest steps would overshoot: their slope misses the per-image cost that only
    shows at larger batches), else to the measured point nearest `fit`."""
    other = over if over in known else min((x for x in known if x != fit),
                                           key=lambda x: abs(size(x) - size(fit)))
    slope = (known[other] - known[fit]) / (size(other) - size(fit))
    if slope <= 0:
        return over - 1
    lo, hi = fit, over - 1  # size is increasing: bisect the prediction, not the measurement
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if known[fit] + slope * (size(mid) - size(fit)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_table(config: PlanConfig) -> list[PlanRow]:
    """Every strategy x execution `config` asks for, searched; refuses a budget that not
    one of them fits at batch 1, naming the smallest need."""
    device = resolve_device(config.device)
    warn_if_over_free_memory(config.budget_bytes, device)
    rows: list[PlanRow] = []
    measured: dict[tuple, PlanRow] = {}
    for name in planned_strategies(config):
        for execution in config.executions:
            probe = _probe(config, name, execution, device)
            if probe is None:
                break
            key = (execution, repr(probe.signature()))
            if key in measured:
                rows.append(dataclasses.replace(measured[key], strategy=name,
                                                same_as=measured[key].strategy))
                continue
            measured[key] = plan_row(config, probe)
            rows.append(measured[key])
    if not rows:
        raise ConfigError(f"no strategy prepares on {config.arch} at {config.resolution} px "
                          "(the log says why for each); name --strategies or change --model")
    if all(row.batch.largest is None for row in rows):
        smallest = min(rows, key=lambda row: row.points[0].peak)
        raise ConfigError(
            f"nothing fits in {format_size(config.budget_bytes)}: the smallest step is "
            f"{smallest.strategy} ({smallest.execution}) at batch "
            f"{smallest.points[0].batch_size} and {config.resolution} px, "
            f"{format_size(smallest.points[0].peak)}; raise --memory-budget to at least that "
            "or plan at a lower --resolution")
    return rows


def plan_row(config: PlanConfig, probe: StepProbe) -> PlanRow:
    """The largest batch of `probe`'s step, and with `config.batch_size` its largest
    resolution (one model per resolution tried)."""
    budget, strategy, execution = config.budget_bytes, probe.name, probe.execution
    try:
        batch, known = largest_fitting(probe.peak, 1, config.max_batch_size, float, budget)
    except TooFewValues:  # batch 1 cannot train here (a 1x1 map in a training BatchNorm)
        batch, known = largest_fitting(probe.peak, 2, config.max_batch_size, float, budget)
    points = [Point(b, config.resolution, peak) for b, peak in sorted(known.items())]
    resolution = None
    if config.batch_size is not None:
        step = config.resolution_step

        def at_resolution(k: int) -> int:
            spec = plan_spec(config, strategy, execution, k * step)
            return StepProbe(spec, probe.device).peak(config.batch_size)

        low = max(1, -(-64 // step))  # 64 px: the smallest input every family takes
        found, known = largest_fitting(at_resolution, low, config.max_resolution // step,
                                       lambda k: float(k * step) ** 2, budget)
        resolution = Answer(None if found.largest is None else found.largest * step,
                            found.capped, found.next_measured)
        points += [Point(config.batch_size, k * step, peak) for k, peak in sorted(known.items())]
    fits = (f"fits batch {batch.largest}" if batch.largest is not None else
            f"fits no batch (batch {points[0].batch_size} needs "
            f"{format_size(points[0].peak)})")
    log.info("plan: %s (%s) %s at %d px", strategy, execution, fits, config.resolution)
    return PlanRow(strategy, dict(config.strategy_options.get(strategy, {})), execution,
                   probe.trainable, batch, resolution, tuple(points), probe.method)


def planned_strategies(config: PlanConfig) -> list[str]:
    """The strategies named, each checked before anything is measured; ["all"]: every
    registered one (`_probe` leaves out those that do not prepare on the model)."""
    for name in config.strategy_options:
        if config.strategies != ["all"] and name not in config.strategies:
            raise ConfigError(f"plan.strategy_options names {name!r}, which is not planned "
                              f"(strategies: {', '.join(config.strategies)}); add it or remove "
                              "its options")
    if config.strategies == ["all"]:
        return strategy_names()
    for name in config.strategies:
        options = dict(config.strategy_options.get(name, {}))
        get_strategy(StrategyConfig(name=name, options=options))
    return list(config.strategies)


def _probe(config: PlanConfig, name: str, execution: str, device: torch.device
           ) -> StepProbe | None:
    """The strategy's step, prepared; under ["all"], None (and a log line saying why) for a
    strategy that does not prepare on `config.arch` (VPT needs a ViT, PEFT methods the peft
    extra), where a named one is an error."""
    try:
        return StepProbe(plan_spec(config, name, execution, config.resolution), device)
    except ConfigError as err:
        if config.strategies != ["all"]:
            raise
        log.info("plan: %s is not planned: %s", name, err)
        return None


def warn_if_over_free_memory(budget: int, device: torch.device) -> None:
    """A budget over what the device has free is planned anyway (the user may plan for
    another machine), with a warning."""
    free = free_memory(device)
    if free is not None and budget > free:
        log.warning("warning: the budget %s is more than this %s has free (%s); planning "
                    "anyway, for a device that has it", format_size(budget), device.type,
                    format_size(free))


def free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
