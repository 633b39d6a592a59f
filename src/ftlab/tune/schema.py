"""The `tune:` section of a suite file, and the suite file `ftlab tune` reads.

`ftlab suite` trains an untuned grid and knows nothing of tuning; `ftlab tune` reads the
same suite file with one more section, `tune:` (this module's `TuneConfig`), through
`TunedSuiteConfig`. The section lives here, beside the code that reads it, so that the
suite layer below has no tuning settings in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ftlab.config.schema import check_choice, check_number, fail
from ftlab.config.sizes import parse_size
from ftlab.suite.schema import SuiteConfig

SAMPLERS = ("tpe", "grid", "random")
REFIT_ALL = "train+val"
REFITS = (REFIT_ALL, "train")
PRUNERS = ("successive_halving", "hyperband", "median", "none")


@dataclass(frozen=True)
class TuneStrategy:
    """Tuning settings of one strategy of the grid."""

    space: dict[str, Any] = field(default_factory=dict)
    """Changes to this strategy's search space, after `tune.space` (null drops a key)."""
    trials: Optional[int] = None
    """Trials of this strategy. None: tune.trials."""

    def __post_init__(self) -> None:
        if self.trials is not None:
            check_number("tune.strategies.trials", self.trials, low=1, high=100_000)


@dataclass(frozen=True)
class TuneConfig:
    """`ftlab tune`: search each dataset x strategy on validation data, then retrain the best
    setting with several seeds and test it once."""

    trials: int = 12
    """Trials per dataset x strategy that end complete or pruned (failed ones are retried)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of the final runs of each best setting (train.seed and data.split_seed)."""
    sampler: str = "tpe"
    """tpe (Optuna's TPE, after `startup_trials` random ones), random, or grid (every
    combination of the space, which must then be lists of choices or integer ranges)."""
    startup_trials: int = 4
    """tpe: random trials before the sampler models the results."""
    pruner: str = "successive_halving"
    """Ends poor trials early on per-epoch validation top-1: successive_halving, hyperband,
    median, or none."""
    min_epochs: int = 1
    """Epochs every trial trains before it may be pruned (the first rung)."""
    reduction_factor: int = 3
    """successive_halving, hyperband: 1 in this many trials goes on at each rung."""
    storage: Optional[str] = None
    """Where the studies live. None: a journal file in the suite folder (tune/journal.log);
    a path: a journal file there (shared filesystems); a URL (sqlite:///..., postgresql://,
    mysql://, redis://): an Optuna storage that workers on other machines share."""
    sampler_seed: int = 0
    """Seeds the sampler (worker i uses sampler_seed + i), so a search can be repeated."""
    space: dict[str, Any] = field(default_factory=dict)
    """Changes to every strategy's search space: key -> [low, high], {low, high, log},
    {choices: [...]}, or null to drop the key (see `ftlab strategies NAME`)."""
    strategies: dict[str, TuneStrategy] = field(default_factory=dict)
    """Per grid strategy: its own space changes and trial count."""
    memory_budget: Optional[str] = None
    """The most memory one training step may hold (512MiB, 2GiB: `ftlab plan`'s sizes).
    Each new trial's step is measured before it trains, at its own batch size, resolution,
    strategy options and execution; one over the budget is not run: it ends pruned, its
    need recorded. The recommendation then names the most accurate strategy within it.
    None: no budget."""
    refit: str = REFIT_ALL
    """What the final runs train on once the search has chosen a setting on the validation
    split: train+val (every labelled image, data.val_fraction=0, for the best trial's best
    epoch; the last checkpoint is tested) or train (the trials' split and budget, the best
    validation checkpoint tested)."""

    def __post_init__(self) -> None:
        check_number("tune.trials", self.trials, low=1, high=100_000)
        if not self.seeds:
            fail("tune.seeds", [], "at least one seed for the final runs")
        if len(set(self.seeds)) != len(self.seeds):
            fail("tune.seeds", list(self.seeds), "distinct seeds")
        for seed in self.seeds:
            check_number("tune.seeds", seed, low=0, high=2**31 - 1)
        check_choice("tune.sampler", self.sampler, SAMPLERS)
        check_number("tune.startup_trials", self.startup_trials, low=0, high=100_000)
        check_choice("tune.pruner", self.pruner, PRUNERS)
        check_choice("tune.refit", self.refit, REFITS)
        check_number("tune.min_epochs", self.min_epochs, low=1, high=100_000)
        check_number("tune.reduction_factor", self.reduction_factor, low=2, high=100)
        check_number("tune.sampler_seed", self.sampler_seed, low=0, high=2**31 - 1)
        if self.memory_budget is not None:
            parse_size(self.memory_budget, "tune.memory_budget")
        if self.storage is not None and not self.storage.strip():
            fail("tune.storage", self.storage, "a storage URL or journal file path, or null")


@dataclass(frozen=True)
class TunedSuiteConfig(SuiteConfig):
    """A suite file as `ftlab tune` reads it: the suite's sections and `tune:`."""

    tune: TuneConfig = field(default_factory=TuneConfig)
    """Tune each dataset x strategy of the grid before its final runs; a suite file without
    this section is tuned with these defaults."""


def budget_bytes(tune: TuneConfig) -> int | None:
    return None if tune.memory_budget is None else parse_size(tune.memory_budget,
                                                              "tune.memory_budget")
