"""Child processes that ftlab supervises (suite runs, tuning workers), started and stopped
one way.

A child appends its output to its own log file, unbuffered (so the log is current when it
fails), and on Linux receives SIGTERM when its parent dies instead of running on alone.
Stopping sends SIGTERM, which ftlab's commands turn into a checkpoint and a clean exit
(`interrupt.py`), and waits for every child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def start_logged(command: list[str], log_file: Path) -> subprocess.Popen:
    """`command` in a child process whose output goes to `log_file` (after a `$ command`
    line), unbuffered, dying with this process on Linux."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        return subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def stop_all(processes: Iterable[subprocess.Popen]) -> None:
    """SIGTERM to every child still running, then wait for all of them."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait()


def cpu_share(parallel: int) -> int:
    """The CPUs each of `parallel` processes on this machine gets (at least one)."""
    return max(1, (os.cpu_count() or 1) // parallel)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when its parent dies (PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)
