"""The 'ftlab' logger's console output, for commands and the Python API alike."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("ftlab")


def ensure_console_log() -> None:
    """Print progress to stdout unless the application has configured the 'ftlab' logger."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
