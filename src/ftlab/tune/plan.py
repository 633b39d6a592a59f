"""What `ftlab tune` searches: one study per dataset x strategy of the suite's grid.

A study's trials share everything but the drawn hyperparameters: the suite's base config and
overrides, the dataset's and the strategy's grid overrides, and the trial budget
(train.epochs). They never evaluate on test (train.evaluate_test=false); the seeds are those
of the suite's overrides. Every plan is resolved and checked (at both ends of its space)
before anything is written, so a bad key or range stops the command at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftlab.assembly import resolve_config
from ftlab.config import ExperimentConfig, config_to_dict, flatten, load_config
from ftlab.config.search import Choice, FloatRange, IntRange, SearchRange
from ftlab.errors import ConfigError, FtlabError
from ftlab.runfiles import SUITE_TUNE
from ftlab.suite.expand import load_suite, suite_dir
from ftlab.tune.schema import TunedSuiteConfig, TuneConfig
from ftlab.tune.space import describe, overrides_for, strategy_space

NOT_COMPARED = ("train.output_dir", "train.run_name", "train.num_threads", "train.device",
                "train.progress", "train.log_every", "train.tensorboard", "data.num_workers",
                "data.root", "data.download")
"""Settings a study's trials may differ in without becoming another experiment: where they
run and what they print (the same list `--resume` allows, but the budget, train.epochs)."""


@dataclass(frozen=True)
class StudyPlan:
    """One study: a dataset x strategy of the grid, its space and its trials' settings."""

    name: str
    """The study's name in its storage: <suite>/<dataset>/<strategy>."""
    label: str
    """Its folder under the suite's tune/ and the stem of its final runs' names."""
    dataset: str | None
    strategy: str
    """The grid's strategy label (the config's strategy.name may differ)."""
    space: dict[str, SearchRange]
    trials: int
    base: str | None
    """The suite's base experiment file (absolute), if any."""
    overrides: tuple[str, ...]
    """Suite, dataset and strategy overrides: everything a trial and a final run share."""
    folder: Path
    """tune/<label>: the trials' run folders and the study record."""
    config: ExperimentConfig
    """A trial's resolved config at the low end of every range (for checks and records)."""

    @property
    def epochs(self) -> int:
        return self.config.train.epochs

    def trial_overrides(self, params: dict[str, Any], run: str) -> list[str]:
        """A trial's overrides: the shared ones, the drawn values, its folder, no test."""
        return [*self.overrides, *overrides_for(decoded(params)),
                f"train.output_dir={self.folder}", f"train.run_name={run}",
                "train.evaluate_test=false"]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the study's experiment: every resolved setting but the searched
        ones and `NOT_COMPARED` (JSON-safe, stored with the study and compared on reuse)."""
        flat = flatten(config_to_dict(self.config))
        kept = {key: value for key, value in flat.items()
                if key not in self.space and key not in NOT_COMPARED}
        return json.loads(json.dumps(kept))

    def configured_params(self) -> dict[str, Any]:
        """The configured value of each searched key that its range contains."""
        flat = flatten(config_to_dict(self.config))
        values = {}
        for key, spec in self.space.items():
            value = flat.get(key)
            if isinstance(spec, Choice):
                if encoded(value) in [encoded(v) for v in spec.values]:
                    values[key] = encoded(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and spec.low <= value <= spec.high and (
                        not isinstance(spec, IntRange) or (value - spec.low) % spec.step == 0):
                values[key] = value
        return values

    def describe_space(self) -> dict[str, dict[str, Any]]:
        return json.loads(json.dumps(describe(self.space)))


def load_tuned_suite(path: str | Path, overrides: Sequence[str] = ()) -> TunedSuiteConfig:
    """A suite file with its `tune:` section (tuned with the defaults where it has none)."""
    return load_suite(path, list(overrides), TunedSuiteConfig)


def build_plans(suite: TunedSuiteConfig, suite_file: Path) -> list[StudyPlan]:
    """The studies of a suite, in grid order (datasets, then strategies), all checked."""
    tune = suite.tune
    grid = suite.grid
    for axis in ("variants", "seeds"):
        if getattr(grid, axis):
            raise ConfigError(f"grid.{axis} cannot be used with ftlab tune: a tuned suite "
                              f"searches each strategy and then trains its best setting with "
                              f"tune.seeds; remove grid.{axis}")
    if not grid.strategies:
        raise ConfigError("ftlab tune needs grid.strategies: the strategies to tune")
    unknown = sorted(set(tune.strategies) - set(grid.strategies))
    if unknown:
        raise ConfigError(f"tune.strategies.{unknown[0]} is not a strategy of the grid; name "
                          f"one of: {', '.join(grid.strategies)}")
    base = str((suite_file.parent / suite.base).resolve()) if suite.base else None
    root = suite_dir(suite, suite_file) / SUITE_TUNE
    datasets: list[str | None] = list(grid.datasets) or [None]
    return [_plan(suite, tune, base, root, dataset, strategy)
            for dataset in datasets for strategy in grid.strategies]


def _plan(suite: TunedSuiteConfig, tune: TuneConfig, base: str | None, root: Path,
          dataset: str | None, strategy: str) -> StudyPlan:
    grid = suite.grid
    overrides = [*suite.overrides, *(grid.datasets[dataset] if dataset else [])]
    strategy_overrides = grid.strategies[strategy]
    if not any(o.startswith("strategy.name=") for o in strategy_overrides):
        overrides.append(f"strategy.name={strategy}")
    overrides += strategy_overrides
    label = f"{dataset}-{strategy}" if dataset else strategy
    where = f"tune {label}"
    try:
        config = resolve_config(load_config(base, [*overrides, "train.evaluate_test=false"]))
        own = tune.strategies.get(strategy)
        space = strategy_space(config.strategy.name, tune.space, own.space if own else None)
    except FtlabError as err:
        raise ConfigError(f"{where}: {err}") from None
    if config.data.val_fraction == 0:
        raise ConfigError(f"{where}: data.val_fraction is 0, but trials are chosen on the "
                          "validation split; set data.val_fraction > 0 (0.1 is usual)")
    trials = own.trials if own and own.trials else tune.trials
    if tune.sampler == "grid":
        trials = min(trials, _grid_size(where, space))
    plan = StudyPlan(name="/".join(p for p in (suite.name, dataset, strategy) if p),
                     label=label, dataset=dataset, strategy=strategy, space=space,
                     trials=trials, base=base, overrides=tuple(overrides),
                     folder=root / label, config=config)
    for end in ("low", "high"):  # a value the space allows must make a valid run
        try:
            resolve_config(load_config(base, plan.trial_overrides(_end(space, end), "check")))
        except FtlabError as err:
            raise ConfigError(f"{where}: at the {end} end of the search space: {err}") from None
    return plan


def grid_values(spec: SearchRange) -> list[Any]:
    """Every value of an enumerable range (grid search), in the form trials draw them."""
    if isinstance(spec, IntRange):
        return list(range(spec.low, spec.high + 1, spec.step))
    if isinstance(spec, Choice):
        return [encoded(value) for value in spec.values]
    raise TypeError(spec)


def _grid_size(where: str, space: dict[str, SearchRange]) -> int:
    size = 1
    for key, spec in space.items():
        if isinstance(spec, FloatRange):
            raise ConfigError(f"{where}: tune.sampler=grid needs a list of values for {key} "
                              f"(it is the real range {spec.describe()}); write {key}: "
                              "{choices: [...]}, or use tune.sampler=tpe")
        size *= len(grid_values(spec))
    return size


def _end(space: dict[str, SearchRange], end: str) -> dict[str, Any]:
    values = {}
    for key, spec in space.items():
        if isinstance(spec, Choice):
            values[key] = encoded(spec.values[0 if end == "low" else -1])
        else:
            values[key] = getattr(spec, end)
    return values


def encoded(value: Any) -> Any:
    """A choice as a search library can store it: lists (a crop-scale pair) as YAML text."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return value


def decoded(params: dict[str, Any]) -> dict[str, Any]:
    """Drawn values as config values: YAML-text lists back to lists."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("["):
            value = json.loads(value)
        out[key] = value
    return out
