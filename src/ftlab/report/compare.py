"""Which strategy to use: test accuracy over seeds with 95 % intervals, paired differences
against the best, the Pareto front of accuracy against cost, and a recommendation in words.

Costs are the training step's memory as the run executed it (train_memory.csv, measured like
`ftlab memory` at the run's batch size and resolution) and the mean time per epoch. Paired
differences use the seeds both strategies ran: a seed fixes the split and the
initialisation, so its share of the noise cancels. An interval that covers zero means the two
strategies are not distinguishable at this budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from ftlab.config.sizes import parse_size
from ftlab.report.collect import Group, RunRecord
from ftlab.stats import Interval, mean_interval, paired_difference

MIB = 2**20
NOT_DISTINGUISHABLE = "not distinguishable at this budget"


@dataclass(frozen=True)
class StrategyResult:
    """One dataset x strategy over its complete seeds."""

    dataset: str
    label: str
    test: Interval
    by_seed: dict[int, float]
    """Test top-1 per seed (runs without a seed are keyed -1, -2, ...: never paired)."""
    memory_mib: float | None
    """Training-step memory as executed (mean over runs), MiB; None unmeasured."""
    stock_mib: float | None
    """The same step under stock autograd, MiB."""
    epoch_time_s: float


@dataclass(frozen=True)
class Versus:
    """A strategy against the dataset's best: paired difference of test top-1 (theirs minus
    the best's), None where they share fewer than one seed."""

    result: StrategyResult
    difference: Interval | None
    verdict: str


def strategy_results(groups: list[Group]) -> list[StrategyResult]:
    """A result per group with complete runs that tested (listed continuations left out)."""
    results = []
    for group in groups:
        runs = [r for r in group.runs if r.complete and r.folder.run_summary.test_top1 is not None
                and not r.continue_from]
        if not runs:
            continue
        by_seed = {(r.seed if r.seed is not None else -1 - i): r.folder.run_summary.test_top1
                   for i, r in enumerate(runs)}
        memory, stock = step_memory_mib(runs)
        results.append(StrategyResult(
            dataset=group.dataset, label=group.label, by_seed=by_seed,
            test=mean_interval(list(by_seed.values())), memory_mib=memory, stock_mib=stock,
            epoch_time_s=fmean(r.folder.run_summary.epoch_time_s for r in runs)))
    return results


def step_memory_mib(runs: list[RunRecord]) -> tuple[float | None, float | None]:
    """Mean training-step memory of complete runs in MiB: as each executed (memory-efficient
    or stock), and under stock autograd; None where a run was not measured."""
    runs = [r for r in runs if r.complete]
    executed = [r.folder.step_memory("efficient" if r.folder.run_summary.memory_efficient
                                     else "stock") for r in runs]
    return _mean_mib(executed), _mean_mib([r.folder.step_memory("stock") for r in runs])


def _mean_mib(values: list[int | None]) -> float | None:
    return fmean(values) / MIB if values and all(v is not None for v in values) else None


def against_best(results: list[StrategyResult]) -> list[Versus]:
    """Each result of one dataset against the one of highest mean test top-1, best first."""
    ranked = sorted(results, key=lambda r: (-r.test.mean, r.memory_mib or 0.0))
    best = ranked[0]
    rows = [Versus(best, None, "best")]
    for result in ranked[1:]:
        try:
            difference = paired_difference(result.by_seed, best.by_seed)
        except ValueError:  # no shared seed: no paired comparison
            rows.append(Versus(result, None, "no shared seed"))
            continue
        if difference.half_width is None:
            verdict = "one shared seed: no interval"
        elif difference.covers(0.0):
            verdict = NOT_DISTINGUISHABLE
        else:
            verdict = "worse" if difference.mean < 0 else "better"
        rows.append(Versus(result, difference, verdict))
    return rows


def pareto(results: list[StrategyResult], cost: str) -> list[StrategyResult]:
    """The results no other beats on both accuracy (mean) and `cost` (an attribute: lower is
    better), cheapest first; results without that cost are left out."""
    known = [r for r in results if getattr(r, cost) is not None]
    front = [r for r in known if not any(
        getattr(o, cost) <= getattr(r, cost) and o.test.mean >= r.test.mean and
        (getattr(o, cost) < getattr(r, cost) or o.test.mean > r.test.mean) for o in known)]
    return sorted(front, key=lambda r: getattr(r, cost))


def recommendation(results: list[StrategyResult], memory_share: float = 0.25,
                   points: float = 1.0, budget: str | None = None) -> list[str]:
    """The answer in a few lines: the most accurate within `budget` (a memory size, e.g.
    tune.memory_budget), if given; the best; the most accurate within `memory_share` of its
    memory; the cheapest within `points` of its accuracy; what ties with it."""
    versus = against_best(results)
    best = versus[0].result
    lines = [] if budget is None else [within_budget(results, budget)]
    lines.append(f"best overall: {best.label} {best.test.format(1)} % test top-1"
                 + (f" at {best.memory_mib:,.0f} MiB per training step" if best.memory_mib
                    else ""))
    if best.memory_mib:
        budget = memory_share * best.memory_mib
        cheap = [r for r in results if r.memory_mib is not None and r.memory_mib <= budget]
        if cheap:
            pick = max(cheap, key=lambda r: r.test.mean)
            lines.append(f"within {memory_share:.0%} of its memory: {pick.label} "
                         f"{pick.test.format(1)} % at {pick.memory_mib:,.0f} MiB "
                         f"({pick.memory_mib / best.memory_mib:.0%})")
        close = [r for r in results if r.memory_mib is not None
                 and r.test.mean >= best.test.mean - points]
        pick = min(close, key=lambda r: r.memory_mib or 0.0)
        if pick is not best:
            lines.append(f"cheapest within {points:g} point of it: {pick.label} "
                         f"{pick.test.format(1)} % at {pick.memory_mib:,.0f} MiB")
    ties = [v.result.label for v in versus if v.verdict == NOT_DISTINGUISHABLE]
    if ties:
        lines.append(f"{NOT_DISTINGUISHABLE} from {best.label}: {', '.join(ties)}")
    front = pareto(results, "memory_mib")
    if len(front) > 1:
        lines.append("Pareto-optimal in accuracy and memory: " + ", ".join(
            f"{r.label} ({r.test.mean:.1f} % at {r.memory_mib:,.0f} MiB)" for r in front))
    return lines


def within_budget(results: list[StrategyResult], budget: str) -> str:
    """"most accurate within 512MiB: ...", among the results whose measured training step
    fits `budget`."""
    limit = parse_size(budget, "tune.memory_budget") / 2**20
    fitting = [r for r in results if r.memory_mib is not None and r.memory_mib <= limit]
    if not fitting:
        return f"within {budget}: no tested strategy's training step fits"
    pick = max(fitting, key=lambda r: r.test.mean)
    return (f"most accurate within {budget}: {pick.label} {pick.test.format(1)} % test "
            f"top-1 at {pick.memory_mib:,.0f} MiB per training step")


def answers(groups: list[Group], budget: str | None = None) -> dict[str, list[str]]:
    """The recommendation per dataset with two or more tested strategies."""
    results = strategy_results(groups)
    by_dataset: dict[str, list[StrategyResult]] = {}
    for result in results:
        by_dataset.setdefault(result.dataset, []).append(result)
    return {dataset: recommendation(chosen, budget=budget)
            for dataset, chosen in sorted(by_dataset.items()) if len(chosen) >= 2}
