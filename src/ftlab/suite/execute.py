"""Run a suite's runs: each in its own `ftlab train` process, N at a time, or through submitit.

A run's state is read from its folder, so a suite that is killed and started again skips
what is complete and resumes what is not. A failing run is recorded with its error and log
and the others go on. The index (`suite.json`, `suite.csv`) is rewritten after every change.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftlab.config import ExperimentConfig
from ftlab.errors import Stopped
from ftlab.runfiles import CONFIG, RunFolder
from ftlab.suite.expand import RunSpec
from ftlab.suite.index import write_index
from ftlab.suite.schema import SuiteConfig
from ftlab.training.interrupt import StopFlag

log = logging.getLogger("ftlab")
LOGS = "logs"


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
        if folder.complete and folder.summary.get("epochs") == self.epochs:
            self.status, self.error = "complete", None


def initial_states(specs: list[RunSpec], configs: dict[str, ExperimentConfig], root: Path
                   ) -> dict[str, RunState]:
    states = {}
    for spec in specs:
        config = configs[spec.name]
        state = RunState(spec, Path(config.train.output_dir) / spec.name,
                         root / LOGS / f"{spec.name}.log", config.train.epochs)
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
        (state.run_dir / "summary.json").unlink(missing_ok=True)
    return [f"train.run_name={state.spec.name}", f"train.output_dir={state.run_dir.parent}"]


class LocalExecutor:
    """Subprocesses on this machine, `parallel` at a time, threads shared out between them."""

    def __init__(self, suite: SuiteConfig, states: dict[str, RunState], index: Callable[[], None]
                 ) -> None:
        self.suite, self.states, self.index = suite, states, index
        self.running: dict[str, subprocess.Popen] = {}

    def run(self) -> None:
        """Until every run has ended; SIGTERM/SIGINT stop the running runs cleanly (each
        saves a checkpoint), record them as stopped and raise `Stopped`."""
        stop = StopFlag()
        with stop.installed():
            while True:
                if stop.requested:
                    self._stop_all(stop)
                self._start_ready()
                if not self.running:
                    break
                time.sleep(0.2)
                self._collect()

    def _stop_all(self, stop: StopFlag) -> None:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for name, process in list(self.running.items()):
            process.wait()
            del self.running[name]
            state = self.states[name]
            self._finish(state, process.returncode, f"stopped by {stop.name}")
            if state.status == "failed":
                state.status = "stopped"
        self.index()
        raise Stopped(f"{stop.name} received: the running runs saved checkpoints and stopped; "
                      "run the same ftlab suite command again to continue", stop.signum or 15)

    def _start_ready(self) -> None:
        for state in self.states.values():
            if len(self.running) >= self.suite.parallel:
                return
            if state.status != "pending":
                continue
            extra = self._extra(state)
            if extra is None:
                if self.states[state.spec.continue_from].status == "failed":  # type: ignore[index]
                    self._finish(state, 1, f"its source run {state.spec.continue_from} failed")
                continue
            self._launch(state, train_command(state, extra))

    def _extra(self, state: RunState) -> list[str] | None:
        extra = _thread_share(self.suite.parallel, state.spec.overrides)
        if state.spec.continue_from is None:
            return extra
        renamed = prepare_continuation(state, self.states)
        return None if renamed is None else renamed + extra

    def _launch(self, state: RunState, command: list[str]) -> None:
        state.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(state.log, "a", encoding="utf-8")
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.running[state.spec.name] = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        handle.close()
        state.status, state.started = "running", time.monotonic()
        log.info("suite: started %s", state.spec.name)
        self.index()

    def _collect(self) -> None:
        for name, process in list(self.running.items()):
            code = process.poll()
            if code is not None:
                del self.running[name]
                self._finish(self.states[name], code, None)

    def _finish(self, state: RunState, code: int, reason: str | None) -> None:
        if state.started is not None:
            state.seconds = time.monotonic() - state.started
        state.refresh()
        if state.status != "complete":
            state.status = "failed"
            state.error = reason or last_error(state.log, code)
        log.info("suite: %s %s%s", state.spec.name, state.status,
                 f" ({state.error})" if state.error else "")
        self.index()


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


def _thread_share(parallel: int, overrides: tuple[str, ...]) -> list[str]:
    """With several runs at once, give each its share of the CPUs unless the suite says."""
    if parallel == 1:
        return []
    extra = []
    cpus = os.cpu_count() or 1
    if not any(o.startswith("train.num_threads=") for o in overrides):
        extra.append(f"train.num_threads={max(1, cpus // parallel)}")
    if not any(o.startswith("data.num_workers=") for o in overrides):
        extra.append(f"data.num_workers={max(0, cpus // parallel - 1)}")
    return extra


def _die_with_parent() -> None:
    """Linux: a run gets SIGTERM when its suite process dies, instead of running on alone."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_states(suite: SuiteConfig, suite_file: Path, root: Path, states: dict[str, RunState]
               ) -> None:
    """Run every pending run with the configured executor, keeping the index current."""
    def index() -> None:
        write_index(root, suite, suite_file, states.values())

    index()
    if suite.executor == "submitit":
        from ftlab.suite.submitit_executor import SubmititExecutor

        SubmititExecutor(suite, states, index, root).run()
    else:
        LocalExecutor(suite, states, index).run()
    index()


def summary_fields(state: RunState) -> dict[str, Any]:
    folder = RunFolder(state.run_dir)
    if state.status != "complete" or not folder.complete:
        return {}
    keys = ("best_val_top1", "best_epoch", "test_top1", "test_top5", "trainable_params",
            "total_params", "epochs", "epoch_time_s", "images_per_s", "peak_memory_bytes",
            "wall_time_s")
    return {k: folder.summary.get(k) for k in keys}
