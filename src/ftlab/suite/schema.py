"""The suite file: which runs make an experiment, and what the report shows of them.

A suite is a grid (datasets x strategies x variants x seeds, each a named list of
`key=value` overrides on a base experiment config) and/or an explicit list of runs. Like
experiment configs, suite files are merged against these dataclasses by OmegaConf, so an
unknown key or a wrong type is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from ftlab.config.commands import DiffConfig, EvalConfig, MemoryConfig
from ftlab.config.schema import check_choice, check_number, check_run_name, fail
from ftlab.runfiles import SCRATCH_VS_FINETUNE


@dataclass(frozen=True)
class GridConfig:
    """Every combination of one entry per axis is a run; an empty axis is left out."""

    datasets: dict[str, list[str]] = field(default_factory=dict)
    """name -> overrides that select and configure the dataset (data.name=..., data.root=...)."""
    strategies: dict[str, list[str]] = field(default_factory=dict)
    """name -> overrides; `strategy.name=<name>` is added unless they set strategy.name."""
    variants: dict[str, list[str]] = field(default_factory=dict)
    """name -> overrides, e.g. other learning rates."""
    seeds: list[int] = field(default_factory=list)
    """train.seed values; each adds a run per combination."""


@dataclass(frozen=True)
class RunEntry:
    """One explicitly listed run."""

    name: str
    """Run folder name (unique within the suite)."""
    overrides: list[str] = field(default_factory=list)
    """Applied after the suite's overrides."""
    continue_from: Optional[str] = None
    """Name of another run of the suite: this run starts as a copy of it once it is complete
    and trains on to `train.epochs` ("training for more epochs")."""

    def __post_init__(self) -> None:
        check_run_name(self.name, "runs.name")


@dataclass(frozen=True)
class SubmititConfig:
    """Where `executor: submitit` sends runs (submitit.AutoExecutor parameters)."""

    cluster: Optional[str] = None
    """None: Slurm when available; "local": processes on this machine; "slurm"."""
    timeout_min: int = 24 * 60
    partition: Optional[str] = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: Optional[int] = None
    additional_parameters: dict[str, str] = field(default_factory=dict)
    """Extra sbatch parameters (slurm_additional_parameters)."""


@dataclass(frozen=True, kw_only=True)
class AnalysisEntry(DiffConfig):
    """A parameter comparison for the report: `ftlab diff`'s settings (every field of
    `DiffConfig`, with its checks) and a name. `a`, `b`, `ref` and `probe` may name runs of
    the suite."""

    section: ClassVar[str] = "analysis"
    name: str
    """Folder of the comparison under the suite's analysis/."""
    probe_dataset: Optional[str] = None
    """The earlier name of `probe`, still read from suite files (it becomes `probe`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_run_name(self.name, "analysis.name")
        if self.probe_dataset is not None:
            if self.probe is not None and self.probe != self.probe_dataset:
                fail("analysis.probe_dataset", self.probe_dataset,
                     f"the same run as analysis.probe ({self.probe!r}), or left out")
            object.__setattr__(self, "probe", self.probe_dataset)
            object.__setattr__(self, "probe_dataset", None)


@dataclass(frozen=True, kw_only=True)
class EvaluationEntry(EvalConfig):
    """An `ftlab eval` for the report: its settings (every field of `EvalConfig`) and a
    name. `target` may name a run of the suite. Its top-1 joins the results table, as the
    reference report's row of the pretrained network on ImageNet does."""

    name: str
    """Folder of the evaluation under the suite's evaluations/, and its row's label."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_run_name(self.name, "evaluations.name")


@dataclass(frozen=True)
class ReportConfig:
    """What the report compares."""

    title: Optional[str] = None
    compare: list[list[str]] = field(default_factory=list)
    """Groups of strategy names plotted together per dataset; empty: all strategies."""
    scratch_vs_finetune: list[str] = field(default_factory=lambda: list(SCRATCH_VS_FINETUNE))
    """[scratch strategy, fine-tuning strategy] for the scratch-vs-fine-tune curves."""
    smoothing: float = 0.0
    """Exponential smoothing of the curves (TensorBoard's slider), 0 to 0.99."""

    def __post_init__(self) -> None:
        check_number("report.smoothing", self.smoothing, low=0.0, high=0.99)


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
        if self.storage is not None and not self.storage.strip():
            fail("tune.storage", self.storage, "a storage URL or journal file path, or null")


EXECUTORS = ("local", "submitit")


@dataclass(frozen=True)
class SuiteConfig:
    name: str = "suite"
    """Suite folder name under output_dir."""
    base: Optional[str] = None
    """Experiment YAML every run starts from, relative to the suite file."""
    overrides: list[str] = field(default_factory=list)
    """Applied to every run, after the base file."""
    grid: GridConfig = field(default_factory=GridConfig)
    runs: list[RunEntry] = field(default_factory=list)
    output_dir: str = "runs/suites"
    parallel: int = 1
    """Runs at a time (local executor); each run that leaves train.num_threads or
    data.num_workers unset gets its share of the CPUs."""
    executor: str = "local"
    """local (subprocesses here) or submitit (Slurm, or its local executor)."""
    submitit: SubmititConfig = field(default_factory=SubmititConfig)
    memory: MemoryConfig = field(default_factory=lambda: MemoryConfig(strategies=[]))
    """The `ftlab memory` table of the report (every setting of that command); no
    strategies: no table."""
    analysis: list[AnalysisEntry] = field(default_factory=list)
    evaluations: list[EvaluationEntry] = field(default_factory=list)
    """`ftlab eval` runs after training (e.g. the pretrained network on ImageNet with
    model.head=keep); each adds a row to the results table."""
    report: ReportConfig = field(default_factory=ReportConfig)
    tune: Optional[TuneConfig] = None
    """Tune each dataset x strategy of the grid before its final runs (`ftlab tune`); also
    what `ftlab tune` uses, with its defaults, for a suite without this section."""

    def __post_init__(self) -> None:
        check_run_name(self.name, "name")
        check_number("parallel", self.parallel, low=1, high=256)
        check_choice("executor", self.executor, EXECUTORS)
        if not self.grid.strategies and not self.runs:
            fail("grid.strategies", {}, "at least one strategy, or an explicit runs list")
