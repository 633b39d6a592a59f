"""Run a suite's runs here: each in its own `ftlab train` process, N at a time.

A run's state is read from its folder, so a suite that is killed and started again skips
what is complete and resumes what is not. A failing run is recorded with its error and log
and the others go on. The index (`suite.json`, `suite.csv`) is rewritten after every change.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable

from ftlab.config import ExperimentConfig, replace_sections
from ftlab.errors import Stopped
from ftlab.suite.schema import SuiteConfig
from ftlab.runtime import StopFlag, cpu_share, start_logged, stop_all
from ftlab.suite.state import RunState, last_error, ready_to_start, train_command

log = logging.getLogger("ftlab")


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
        stop_all(self.running.values())
        for name, process in list(self.running.items()):
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
            if not ready_to_start(state, self.states):
                if self.states[state.spec.continue_from].status == "failed":  # type: ignore[index]
                    self._finish(state, 1, f"its source run {state.spec.continue_from} failed")
                continue
            self._launch(state, train_command(state))

    def _launch(self, state: RunState, command: list[str]) -> None:
        self.running[state.spec.name] = start_logged(command, state.log)
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


def share_cpus(config: ExperimentConfig, parallel: int) -> ExperimentConfig:
    """With several runs at once on this machine, each gets its share of the CPUs as torch
    threads and loader workers, where its resolved config leaves them unset (None): a value
    set anywhere (base config, grid entry, overrides) is kept."""
    if parallel == 1:
        return config
    share = cpu_share(parallel)
    train = {"num_threads": max(1, share)} if config.train.num_threads is None else {}
    data = {"num_workers": max(0, share - 1)} if config.data.num_workers is None else {}
    return replace_sections(config, train=train, data=data) if train or data else config
