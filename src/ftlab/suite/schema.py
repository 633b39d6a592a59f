"""The suite file: which runs make an experiment, and what the report shows of them.

A suite is a grid (datasets x strategies x variants x seeds, each a named list of
`key=value` overrides on a base experiment config) and/or an explicit list of runs. Like
experiment configs, suite files are merged against these dataclasses by OmegaConf, so an
unknown key or a wrong type is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

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

    def __post_init__(self) -> None:
        check_run_name(self.name, "name")
        check_number("parallel", self.parallel, low=1, high=256)
        check_choice("executor", self.executor, EXECUTORS)
        if not self.grid.strategies and not self.runs:
            fail("grid.strategies", {}, "at least one strategy, or an explicit runs list")
