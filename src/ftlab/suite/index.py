"""suite.json and suite.csv: every run of a suite, its state, and its headline numbers.

suite.json is a `ftlab.runfiles.SuiteIndex`; suite.csv holds the same rows for spreadsheets
(ftlab never reads it back, so it carries no format_version of its own).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from pathlib import Path

from ftlab.fileio import atomic_write_text
from ftlab.runfiles import SUITE_CSV, SUITE_INDEX, SuiteIndex, SuiteRun
from ftlab.suite.schema import SuiteConfig
from ftlab.suite.state import RunState, run_numbers

COLUMNS = ["name", "status", "dataset", "strategy", "variant", "seed", "best_val_top1",
           "test_top1", "test_top5", "trainable_params", "epochs", "epoch_time_s",
           "images_per_s", "peak_memory_bytes", "seconds", "run_dir", "log", "error"]


def write_index(root: Path, suite: SuiteConfig, suite_file: Path,
                states: Iterable[RunState]) -> None:
    index = SuiteIndex(suite=suite.name, file=str(suite_file), folder=str(root),
                       updated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       runs=[_run(state) for state in states])
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / SUITE_INDEX, index.to_json())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(run.to_dict() for run in index.runs)
    atomic_write_text(root / SUITE_CSV, buffer.getvalue())


def _run(state: RunState) -> SuiteRun:
    spec = state.spec
    return SuiteRun(name=spec.name, status=state.status, **spec.labels(),
                    numbers=run_numbers(state), seconds=state.seconds,
                    run_dir=str(state.run_dir), log=str(state.log), error=state.error,
                    overrides=list(spec.overrides), continue_from=spec.continue_from)
