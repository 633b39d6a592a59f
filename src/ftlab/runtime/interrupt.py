"""SIGTERM and SIGINT end a run cleanly instead of killing it mid-write.

Schedulers (Slurm, Kubernetes, torchrun) send SIGTERM before they kill a job, and Ctrl-C
sends SIGINT. Either one only raises a flag here; the training loop finishes the step it is
in, the trainer writes a checkpoint of that exact point (mid-epoch included) and the process
exits with 128 + the signal number. `ftlab train --resume` then continues from that step to
the result an uninterrupted run would have reached. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set by the signal handler, read by the training loop once per step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __call__(self) -> bool:
        """The loop's poll: `stop()`. (No __bool__: `flag or default` must not misfire.)"""
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        self.signum = signum

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Catch SIGTERM/SIGINT while the block runs (main thread only: Python delivers
        signals there; a run started from another thread keeps the default behaviour)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
