"""The files of a run folder, and how to read them back.

Training writes these files; suites, plots and reports only read them. Keeping the names
and readers here lets `report` read runs without importing `training`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LAST = "last.pt"
BEST = "best.pt"
LOG = "log.txt"
TENSORBOARD = "tensorboard"
PREVIOUS = "previous.pt"
LOCK = ".lock"


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
    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / SUMMARY).read_text(encoding="utf-8"))

    @cached_property
    def metrics(self) -> list[dict[str, float]]:
        path = self.path / METRICS
        return read_metrics_csv(path) if path.is_file() else []

    @cached_property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / CONFIG).read_text(encoding="utf-8")) or {}

    def series(self, metric: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of one metrics.csv column, NaN rows skipped."""
        points = [(row["epoch"], row[metric]) for row in self.metrics
                  if metric in row and not math.isnan(row[metric])]
        return [p[0] for p in points], [p[1] for p in points]
