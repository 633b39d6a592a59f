"""A suite run's state, read from its folder, and the command that (re)starts it.

Shared by the executors (local processes, submitit) and the index, so none of them imports
another.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.config import ExperimentConfig
from ftlab.runfiles import CONFIG, SUITE_LOGS, SUMMARY, RunFolder, RunNumbers
from ftlab.suite.expand import RunSpec


@dataclass
class RunState:
    spec: RunSpec
    run_dir: Path
    log: Path
    epochs: int
    status: str = "pending"
    error: str | None = None
    seconds: float | None = None
    started: float | None = field(default=None, repr=False)

    def refresh(self) -> None:
        """complete when the folder holds a summary of all its epochs."""
        folder = RunFolder(self.run_dir)
        if folder.complete and folder.run_summary.epochs == self.epochs:
            self.status, self.error = "complete", None


def initial_states(specs: list[RunSpec], configs: dict[str, ExperimentConfig], root: Path
                   ) -> dict[str, RunState]:
    states = {}
    for spec in specs:
        config = configs[spec.name]
        state = RunState(spec, Path(config.train.output_dir) / spec.name,
                         root / SUITE_LOGS / f"{spec.name}.log", config.train.epochs)
        state.refresh()
        states[spec.name] = state
    return states


def train_command(state: RunState, extra: list[str]) -> list[str]:
    """`ftlab train` for a fresh run, `--resume` for one that already has a folder."""
    command = [sys.executable, "-m", "ftlab", "train"]
    spec = state.spec
    if (state.run_dir / CONFIG).is_file():
        return command + ["--resume", str(state.run_dir), f"train.epochs={state.epochs}", *extra]
    if spec.base:
        command.append(spec.base)
    return command + [*spec.overrides, *extra]


def prepare_continuation(state: RunState, states: dict[str, RunState]) -> list[str] | None:
    """Copy a finished source run into this run's folder; None while the source is not done.

    Returns the overrides that rename the copy and train it on to its own epoch count.
    """
    source = states[state.spec.continue_from]  # type: ignore[index]
    if source.status != "complete":
        return None
    if not (state.run_dir / CONFIG).is_file():
        shutil.copytree(source.run_dir, state.run_dir, dirs_exist_ok=True)
        (state.run_dir / SUMMARY).unlink(missing_ok=True)
    return [f"train.run_name={state.spec.name}", f"train.output_dir={state.run_dir.parent}"]


def last_error(log_file: Path, code: int) -> str:
    """The run's one-line error from its log, else its exit code."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("ftlab: error: ")]
    if errors:
        return errors[-1].removeprefix("ftlab: error: ")
    return f"exit code {code}; see {log_file}"


def run_numbers(state: RunState) -> RunNumbers | None:
    """A complete run's headline numbers for the index, from its summary.json."""
    folder = RunFolder(state.run_dir)
    if state.status != "complete" or not folder.complete:
        return None
    return RunNumbers.of(folder.run_summary)
