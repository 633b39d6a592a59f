"""A run folder on disk, and finding run folders.

Training writes these files; suites, plots and reports only read them. Keeping the readers
here lets `report` read runs without importing `training`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.memory import MemoryRecord, read_memory_csv
from ftlab.runfiles.names import CONFIG, LAST, LOCK, METRICS, RUN_MEMORY, SUMMARY
from ftlab.runfiles.run import RunSummary, read_summary
from ftlab.yamlfile import read_yaml


def is_run_folder(path: Path) -> bool:
    """A folder `ftlab train` made: its config and, from the first moment of training on,
    its metrics (a run still setting up, or one `ftlab suite` prepared, has only the config)."""
    return (path / CONFIG).is_file() and ((path / METRICS).is_file() or (path / LAST).is_file())


def run_folder_contents(path: Path) -> list[Path]:
    """What a run folder holds, apart from its lock file and temporaries of a killed write
    (neither says anything about the run); nothing when it does not exist."""
    if not path.is_dir():
        return []
    return [item for item in path.iterdir()
            if item.name != LOCK and not (item.name.startswith(".") and item.suffix == ".tmp")]


def training_started(path: Path) -> bool:
    """Whether `ftlab train` has begun in this run folder: it holds more than the config.yaml
    that `ftlab suite` writes into each run's folder before any run starts. A folder that has
    not started is started with `ftlab train FOLDER/config.yaml`; one that has, with --resume."""
    return any(item.name != CONFIG for item in run_folder_contents(path))


def run_folders_below(root: Path, depth: int = 2) -> list[Path]:
    """Run folders at `root` and up to `depth` levels below (a suite keeps them in runs/),
    without walking a whole tree: a dataset folder of a million files is not searched."""
    found, level = [], [root]
    for remaining in range(depth, -1, -1):
        runs = [folder for folder in level if is_run_folder(folder)]
        found += runs
        level = [child for folder in level if remaining and folder not in runs
                 for child in _subfolders(folder)]
    return sorted(found)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if child.is_dir()]
    except OSError:
        return []


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (empty cells become NaN)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()}
                for row in csv.DictReader(handle)]


@dataclass(frozen=True)
class RunFolder:
    """A run folder on disk, read lazily."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return (self.path / SUMMARY).is_file()

    @cached_property
    def run_summary(self) -> RunSummary:
        """summary.json, checked and upgraded (`RunSummary`); a newer one is refused."""
        return read_summary(self.path / SUMMARY)

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json as a dict, as this ftlab reads it (`run_summary.to_dict()`), for
        scripts; ftlab's own code reads `run_summary`."""
        return self.run_summary.to_dict()

    @cached_property
    def metrics(self) -> list[dict[str, float]]:
        path = self.path / METRICS
        return read_metrics_csv(path) if path.is_file() else []

    @cached_property
    def config(self) -> dict[str, Any]:
        values = read_yaml(self.path / CONFIG, "run config")
        if not isinstance(values, dict):
            raise RunDirError(f"{self.path / CONFIG} is not an ftlab run config (not a "
                              "mapping of sections)")
        return values

    @cached_property
    def train_memory(self) -> dict[str, MemoryRecord]:
        """train_memory.csv by execution (stock, efficient); empty where the run has none
        (a run outside a suite, or of ftlab 0.1)."""
        path = self.path / RUN_MEMORY
        return {r.execution: r for r in read_memory_csv(path)} if path.is_file() else {}

    def step_memory(self, execution: str) -> int | None:
        """Bytes one training step holds in `execution` mode: the measured peak, else
        parameters + gradients + optimizer state + saved activations; None unmeasured."""
        record = self.train_memory.get(execution)
        if record is None:
            return None
        if record.peak_bytes is not None:
            return record.peak_bytes
        return (record.parameters_bytes + record.gradients_bytes + record.optimizer_bytes +
                record.activations_bytes)

    def series(self, metric: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of one metrics.csv column, NaN rows skipped."""
        points = [(row["epoch"], row[metric]) for row in self.metrics
                  if metric in row and not math.isnan(row[metric])]
        return [p[0] for p in points], [p[1] for p in points]
