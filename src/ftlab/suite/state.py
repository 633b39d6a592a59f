"""A suite run's state, read from its folder, and the command that (re)starts it.

Shared by the executors (local processes, submitit) and the index, so none of them imports
another.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.config import ExperimentConfig, config_to_yaml
from ftlab.errors import RunDirError
from ftlab.fileio import atomic_write_text
from ftlab.runfiles import (
    CONFIG,
    LOCK,
    SUITE_LOGS,
    SUMMARY,
    RunFolder,
    RunNumbers,
    training_started,
)
from ftlab.suite.expand import RunSpec, own_settings


@dataclass
class RunState:
    spec: RunSpec
    run_dir: Path
    log: Path
    config: ExperimentConfig = field(repr=False)
    """The run's resolved config, the suite's CPU share included."""
    status: str = "pending"
    error: str | None = None
    seconds: float | None = None
    started: float | None = field(default=None, repr=False)

    @property
    def epochs(self) -> int:
        return self.config.train.epochs

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
                         root / SUITE_LOGS / f"{spec.name}.log", config)
        state.refresh()
        states[spec.name] = state
    return states


def write_configs(states: Iterable[RunState]) -> None:
    """Each run not started yet gets its resolved config.yaml now, before any run starts, and
    is then started with nothing but that file; a started run keeps the config it trains
    with. A not-started run of a changed suite file thus gets the new config, as before."""
    for state in states:
        if training_started(state.run_dir):
            continue
        try:
            state.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create run folder {state.run_dir} ({err.strerror or err});"
                              " set output_dir to a writable folder") from None
        atomic_write_text(state.run_dir / CONFIG, config_to_yaml(state.config))


def train_command(state: RunState) -> list[str]:
    """`ftlab train RUN/config.yaml` for a run not started yet; `--resume` for one that has,
    with its own settings from the suite (a suite run again with more epochs trains its
    finished runs on; a continued run trains under its own name)."""
    command = [sys.executable, "-m", "ftlab", "train"]
    if not training_started(state.run_dir):
        return command + [str(state.run_dir / CONFIG)]
    settings = [f"{key}={json.dumps(value)}" for key, value in own_settings(state.config).items()
                if value is not None]  # JSON strings are YAML: a path stays one string
    return command + ["--resume", str(state.run_dir), *settings]


def ready_to_start(state: RunState, states: dict[str, RunState]) -> bool:
    """A run can start at once; one that continues another once its source is complete, when
    the source's folder is copied into its own (once)."""
    if state.spec.continue_from is None:
        return True
    source = states[state.spec.continue_from]
    if source.status != "complete":
        return False
    if not training_started(state.run_dir):
        _copy_run(source.run_dir, state.run_dir)
    return True


def _copy_run(source: Path, target: Path) -> None:
    """The source's files but its summary (the copy trains on) as `target`, all at once: the
    copy is made beside it and renamed, so a suite killed mid-copy leaves the target not
    started, and the next attempt copies again."""
    partial = target.with_name(f".{target.name}.copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(SUMMARY, LOCK, ".*.tmp"))
    shutil.rmtree(target, ignore_errors=True)  # its config.yaml, written before the copy
    partial.rename(target)


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
