"""`format_version`: which layout of a file this is, and refusing layouts from the future.

Every file kind ftlab reads back (checkpoint, summary.json, suite.json, memory.csv) carries
an integer `format_version`. It goes up when a change would make an older ftlab misread the
file (a key renamed, removed or given another meaning); adding a key that older readers
ignore does not raise it. Files written by ftlab 0.1 have no `format_version` and are
version 1. A reader upgrades every older version it knows in its `from_dict`; a file of a
version newer than the code is refused in one line that says to upgrade ftlab, never
half-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftlab.errors import FtlabError, NewerFormatError

FIRST = 1
"""The version of files without a `format_version` (written by ftlab 0.1)."""
KEY = "format_version"


def checked_version(values: Mapping[str, Any], current: int, what: str, source: object,
                    error: type[FtlabError], default: int = FIRST) -> int:
    """The `format_version` of `values` read from `source` (`default` when absent).

    Raises:
        NewerFormatError: the file is of a version newer than `current`.
        error: the version is not a positive whole number (a damaged or foreign file).
    """
    version = values.get(KEY, default)
    if isinstance(version, str) and version.isdigit():  # a CSV cell
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < FIRST:
        raise error(f"{source} is not a readable {what}: its {KEY} {version!r} is not a "
                    "positive whole number (a damaged file, or not ftlab's)")
    if version > current:
        raise NewerFormatError(f"{source} is a {what} of {KEY} {version}, written by a newer "
                               f"ftlab; this ftlab reads {KEY} {current} at most: upgrade "
                               "ftlab (pip install --upgrade ftlab) to read it")
    return version
