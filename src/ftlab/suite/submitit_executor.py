"""Runs through submitit: Slurm jobs on a cluster, or its local executor for testing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from ftlab.errors import ConfigError
from ftlab.suite.state import RunState, last_error, ready_to_start, train_command
from ftlab.suite.schema import SuiteConfig


def run_logged(command: list[str], log_file: str) -> int:
    """The job itself: one `ftlab train` process, its output appended to the run's log."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode


def job_executor(suite: SuiteConfig, root: Path):
    """A submitit executor with the suite's job settings, its files in <suite>/submitit."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("executor: submitit needs the submitit package; pip install "
                          "submitit") from None
    settings = suite.submitit
    executor = submitit.AutoExecutor(folder=str(root / "submitit"), cluster=settings.cluster)
    parameters = {"timeout_min": settings.timeout_min, "gpus_per_node": settings.gpus_per_node,
                  "cpus_per_task": settings.cpus_per_task, "name": f"ftlab-{suite.name}"}
    if settings.mem_gb is not None:
        parameters["mem_gb"] = settings.mem_gb
    if settings.partition is not None:
        parameters["slurm_partition"] = settings.partition
    if settings.additional_parameters:
        parameters["slurm_additional_parameters"] = dict(settings.additional_parameters)
    executor.update_parameters(**parameters)
    return executor


class SubmititExecutor:
    """Submits the runs that are ready, waits, then those that continued from them."""

    def __init__(self, suite: SuiteConfig, states: dict[str, RunState],
                 index: Callable[[], None], root: Path) -> None:
        self.suite, self.states, self.index = suite, states, index
        self.executor = job_executor(suite, root)

    def run(self) -> None:
        while True:
            wave = [s for s in self.states.values()
                    if s.status == "pending" and ready_to_start(s, self.states)]
            if not wave:
                break
            jobs = [(state, self.executor.submit(run_logged, train_command(state),
                                                 str(state.log))) for state in wave]
            for state, _ in jobs:
                state.status = "running"
            self.index()
            for state, job in jobs:
                code = job.result()
                state.refresh()
                if state.status != "complete":
                    state.status, state.error = "failed", last_error(state.log, code)
                self.index()
        for state in self.states.values():
            if state.status == "pending":  # its source failed
                state.status = "failed"
                state.error = f"its source run {state.spec.continue_from} failed"
