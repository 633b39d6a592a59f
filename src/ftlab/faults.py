"""Failpoints: named places where the fault-injection tests crash a run on purpose.

`FTLAB_FAILPOINTS="train_step=7:KILL,atomic_write=2:TERM"` makes this process send itself
SIGKILL on the 7th training step and SIGTERM on the 2nd atomic file write (after the new
bytes are on disk, before the rename); `atomic_write=3:ENOSPC` raises "No space left on
device" there instead. Without the variable a failpoint is one check of an empty dict.
The points:

- `train_step`: after a training step's optimizer update;
- `eval_batch`: after an evaluation batch;
- `atomic_write`: inside every atomic file write, between fsync and rename;
- `epoch_end`: after an epoch's checkpoint and metrics are written;
- `journal_write`: half-way through a write to the tuning journal (ftlab.tune.journal).

Tests use them to prove that a run killed at any of these moments resumes to the result of
an uninterrupted run; users never need them.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENVIRONMENT = "FTLAB_FAILPOINTS"


def _parse(text: str) -> dict[str, tuple[int, str]]:
    plan = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, spec = item.partition("=")
        count, _, action = spec.partition(":")
        plan[name] = (int(count or 1), action or "KILL")
    return plan


_PLAN = _parse(os.environ.get(ENVIRONMENT, ""))
_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Act as planned on the planned hit of `name`: a signal to this process, or ENOSPC."""
    action = due(name)
    if action is not None:
        act(action)


def due(name: str) -> str | None:
    """Count a hit of `name`; its planned action when this is the planned hit, else None
    (for a failpoint that must do something of its own first, such as a torn write)."""
    if not _PLAN or name not in _PLAN:
        return None
    _hits[name] += 1
    count, action = _PLAN[name]
    return action if _hits[name] == count else None


def act(action: str) -> None:
    """Send this process the signal `action` names (KILL, TERM, INT), or raise ENOSPC."""
    if action == "ENOSPC":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.Signals[f"SIG{action}"])
