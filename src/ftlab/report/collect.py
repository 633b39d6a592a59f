"""The runs of a suite folder, grouped for the report: every number comes from a run folder."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from ftlab.config import ExperimentConfig, load_run_config
from ftlab.errors import RunDirError
from ftlab.runfiles import (
    CONFIG,
    SUITE_INDEX,
    RunFolder,
    SuiteRun,
    read_suite_index,
    run_folders_below,
)


@dataclass(frozen=True)
class RunRecord:
    name: str
    folder: RunFolder
    status: str
    dataset: str
    strategy: str
    variant: str | None
    seed: int | None
    error: str | None = None
    log: str | None = None
    continue_from: str | None = None
    config: ExperimentConfig | None = None
    """The run's config as it trains (`load_run_config`); None before it has one."""

    @property
    def complete(self) -> bool:
        return self.status == "complete" and self.folder.complete


@dataclass
class Group:
    """Runs that differ only by seed."""

    dataset: str
    strategy: str
    variant: str | None
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.strategy if self.variant is None else f"{self.strategy} ({self.variant})"

    def values(self, key: str) -> list[float]:
        """One `RunSummary` field of each complete run (None values left out)."""
        values = [getattr(r.folder.run_summary, key) for r in self.runs if r.complete]
        return [float(value) for value in values if value is not None]

    def mean_curve(self, metric: str) -> tuple[list[float], list[float]]:
        """Per-epoch mean over the complete runs that reached that epoch."""
        by_epoch: dict[float, list[float]] = defaultdict(list)
        for run in self.runs:
            if run.complete:
                for epoch, value in zip(*run.folder.series(metric)):
                    by_epoch[epoch].append(value)
        epochs = sorted(by_epoch)
        return epochs, [fmean(by_epoch[e]) for e in epochs]


def check_report_source(root: Path) -> None:
    """`root` must be a suite folder (its index), or a run folder or a folder of runs (up to
    two levels down): anything else — a dataset, a typo — is refused before a report is
    written into it."""
    if not root.is_dir():
        raise RunDirError(f"{root} is not a folder; pass the folder of an ftlab suite")
    if (root / SUITE_INDEX).is_file() or run_folders_below(root):
        return
    raise RunDirError(f"{root} is not an ftlab suite folder (no {SUITE_INDEX}) and holds no "
                      "ftlab run folders; pass the folder `ftlab suite` made "
                      "(output_dir/name) or one holding run folders")


def load_records(root: Path) -> list[RunRecord]:
    """From the suite index when there is one (its runs found in `root` even when the suite
    folder was moved), else every run folder below `root`."""
    if (root / SUITE_INDEX).is_file():
        return [_indexed_record(run) for run in read_suite_index(root).runs]
    return [_folder_record(folder) for folder in run_folders_below(root)]


def groups(records: list[RunRecord]) -> list[Group]:
    grouped: dict[tuple[str, str, str | None], Group] = {}
    for record in records:
        key = (record.dataset, record.strategy, record.variant)
        grouped.setdefault(key, Group(*key)).runs.append(record)
    return list(grouped.values())


def mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{fmean(values):.{digits}f} ± {stdev(values):.{digits}f}"


def _indexed_record(run: SuiteRun) -> RunRecord:
    folder = Path(run.run_dir)
    config = run_config(folder)
    return RunRecord(
        name=folder.name, folder=RunFolder(folder), status=run.status,
        dataset=run.dataset or (config.data.name if config else "?"),
        strategy=run.strategy or (config.strategy.name if config else "?"),
        # A listed (not grid) run is its own group: its overrides are its own.
        variant=run.variant if run.strategy else folder.name,
        seed=_seed(run.seed), error=run.error, log=run.log, continue_from=run.continue_from,
        config=config)


def _folder_record(folder: Path) -> RunRecord:
    """A run folder outside a suite: its labels from its config."""
    run, config = RunFolder(folder), run_config(folder)
    return RunRecord(
        name=folder.name, folder=run, status="complete" if run.complete else "pending",
        dataset=config.data.name if config else "?",
        strategy=config.strategy.name if config else "?",
        variant=None, seed=config.train.seed if config else None, config=config)


def run_config(folder: Path) -> ExperimentConfig | None:
    """The run folder's config.yaml as a typed config, keys it predates set as it trained;
    None when it has none (a run whose folder is gone)."""
    path = folder / CONFIG
    return load_run_config(path) if path.is_file() else None


def _seed(seed: Any) -> Any:
    return None if seed is None or (isinstance(seed, float) and math.isnan(seed)) else seed
