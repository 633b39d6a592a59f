"""The runs of a suite folder, grouped for the report: every number comes from a run folder."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles import CONFIG, SUITE_INDEX, RunFolder, run_folders_below


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
        return [float(r.folder.summary[key]) for r in self.runs
                if r.complete and r.folder.summary.get(key) is not None]

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
    """From the suite index when there is one, else every run folder below `root`."""
    index = root / SUITE_INDEX
    if index.is_file():
        rows = _index_rows(index)
        return [_record(Path(row["run_dir"]), row) for row in rows]
    return [_record(folder, {"status": "complete" if RunFolder(folder).complete else "pending"})
            for folder in run_folders_below(root)]


def _index_rows(index: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(index.read_text(encoding="utf-8"))["runs"]
        if not all(isinstance(row, dict) and isinstance(row.get("run_dir"), str)
                   for row in rows):
            raise TypeError
        return rows
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise RunDirError(f"{index} is not an ftlab suite index (damaged or from another "
                          "tool); run the suite again to rewrite it") from None


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


def _record(folder: Path, row: dict[str, Any]) -> RunRecord:
    run = RunFolder(folder)
    config = run.config if (folder / CONFIG).is_file() else {}
    seed = row.get("seed", config.get("train", {}).get("seed"))
    return RunRecord(
        name=folder.name, folder=run, status=row.get("status", "pending"),
        dataset=row.get("dataset") or config.get("data", {}).get("name", "?"),
        strategy=row.get("strategy") or config.get("strategy", {}).get("name", "?"),
        # A listed (not grid) run is its own group: its overrides are its own.
        variant=row.get("variant") if row.get("strategy") or "overrides" not in row
        else folder.name,
        seed=None if seed is None or (isinstance(seed, float) and math.isnan(seed)) else seed,
        error=row.get("error"), log=row.get("log"), continue_from=row.get("continue_from"))
