"""suite.json and suite.csv: every run of a suite, its state, and its headline numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ftlab.fileio import atomic_write_text
from ftlab.runfiles import SUITE_INDEX
from ftlab.suite.schema import SuiteConfig
from ftlab.suite.state import RunState, summary_fields

INDEX_JSON = SUITE_INDEX
INDEX_CSV = "suite.csv"
COLUMNS = ["name", "status", "dataset", "strategy", "variant", "seed", "best_val_top1",
           "test_top1", "test_top5", "trainable_params", "epochs", "epoch_time_s",
           "images_per_s", "peak_memory_bytes", "seconds", "run_dir", "log", "error"]


def write_index(root: Path, suite: SuiteConfig, suite_file: Path,
                states: Iterable[RunState]) -> None:
    rows = [_row(state, summary_fields(state)) for state in states]
    root.mkdir(parents=True, exist_ok=True)
    document = {"suite": suite.name, "file": str(suite_file),
                "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "runs": rows}
    atomic_write_text(root / INDEX_JSON, json.dumps(document, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / INDEX_CSV, buffer.getvalue())


def read_index(root: Path) -> dict[str, Any]:
    return json.loads((root / INDEX_JSON).read_text(encoding="utf-8"))


def _row(state: RunState, numbers: dict[str, Any]) -> dict[str, Any]:
    return {"name": state.spec.name, "status": state.status, **state.spec.labels(), **numbers,
            "seconds": state.seconds, "run_dir": str(state.run_dir), "log": str(state.log),
            "error": state.error, "overrides": list(state.spec.overrides),
            "continue_from": state.spec.continue_from}
