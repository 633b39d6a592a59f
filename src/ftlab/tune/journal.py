"""The tuning journal: Optuna's journal file, checked before use and repaired after a crash.

Optuna appends one JSON record per line and, reading, skips a last line that has no newline.
A process killed during a write (SIGKILL, power loss) leaves such a torn line, and the next
append is glued onto it: the journal then holds a line that is not JSON in the middle, and
every later read fails. So the file is checked when it is opened, under the lock its
writers take:

- a torn tail (bytes after the last complete record that hold no complete record) is the
  expected crash artefact: it is cut off with one warning naming how many bytes, every
  complete record is kept, and the damaged file is kept beside it as a copy;
- damage followed by complete records is not a crash: refused in one line naming the file
  and the byte offset, the file untouched (repairing it would silently drop trials).

A path that cannot hold a journal (a folder, a FIFO or device, a folder that cannot be
written) is refused in one line before anything is opened: opening a FIFO blocks forever.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from ftlab.errors import ConfigError
from ftlab.faults import act, due

log = logging.getLogger("ftlab")

DAMAGED_SUFFIX = ".damaged-"
"""A repaired journal's original bytes are kept as `<journal>.damaged-<time>`."""


def check_journal_path(path: Path) -> None:
    """Refuse a journal path that is not a regular file that can be written (or created)."""
    where = f"tune.storage: journal file {path}"
    if not path.parent.is_dir():
        raise ConfigError(f"{where}: its folder does not exist; create it or give a storage "
                          "URL")
    if path.exists() or path.is_symlink():
        mode = path.stat().st_mode if path.exists() else 0
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{where} is a folder; name a file in it, e.g. "
                              f"{path / 'journal.log'}")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{where} is not a regular file (a FIFO, socket, device or "
                              "broken link); name a regular file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"{where} cannot be read and written (permission denied); "
                              "fix its permissions or name another file")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: its folder {path.parent} cannot be written (permission "
                          "denied), and the journal needs a lock file beside it; name a "
                          "writable folder")


def scan(data: bytes) -> tuple[int, int | None]:
    """(the offset just past the last complete record, the offset of the first damaged line
    followed by a complete record, or None). A record is a newline-terminated JSON object
    with an `op_code`, as Optuna writes them."""
    end, damage, offset = 0, None, 0
    while offset < len(data):
        newline = data.find(b"\n", offset)
        if newline < 0:
            break  # no newline: torn, whatever it holds
        if _is_record(data[offset:newline]):
            if damage is None and end < offset:
                damage = end
            end = newline + 1
        offset = newline + 1
    return end, damage


def _is_record(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False
    return isinstance(value, dict) and "op_code" in value


def repair(path: Path) -> None:
    """Cut a torn tail off the journal at `path` (see the module); refuse damage inside."""
    data = path.read_bytes()
    end, damage = scan(data)
    if damage is not None:
        raise ConfigError(f"tune journal {path} is damaged at byte {damage} of {len(data)} "
                          "(complete records follow a line that is not one): it was not "
                          "written by a crash and is left as it is; restore it from a copy, "
                          "or move it away to start the search again")
    if end == len(data):
        return
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    copy = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}")
    copy.write_bytes(data)
    with open(path, "r+b") as handle:
        handle.truncate(end)
        os.fsync(handle.fileno())
    log.warning("warning: tune journal %s ended in a torn record (%d bytes, what a crash "
                "during a write leaves): cut off, every complete record kept; the damaged "
                "file is kept as %s", path, len(data) - end, copy.name)


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend, checked and repaired when it is opened (see the
    module), with the `journal_write` failpoint of ftlab.faults: a write torn half-way."""

    def __init__(self, path: Path) -> None:
        check_journal_path(path)
        lock = JournalFileSymlinkLock(str(path))
        if path.exists():
            # The writers' own lock: a record being appended is not taken for a torn one.
            lock.acquire()  # blocks; Optuna breaks a lock left by a dead writer after 30 s
            try:
                repair(path)
            finally:
                lock.release()
        super().__init__(str(path), lock_obj=lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        action = due("journal_write")
        if action is not None:  # fault injection: the process dies half-way through
            text = "\n".join(json.dumps(entry, separators=(",", ":")) for entry in logs) + "\n"
            with open(self._file_path, "ab") as handle:
                handle.write(text.encode("utf-8")[:max(1, len(text) // 2)])
                handle.flush()
                os.fsync(handle.fileno())
            act(action)
        super().append_logs(logs)
