"""Errors that the CLI turns into one line and an exit code instead of a traceback.

Anything a user can fix (a config key, a path, a weights file) raises a subclass of
`FtlabError`; the CLI prints `ftlab: error: <message>` and exits with `exit_code`.
Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FtlabError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 2
    label = "error"
    """The word after `ftlab:` on the CLI's line."""

    def __init__(self, message: str = "") -> None:
        super().__init__(_one_line(_unwrap_worker_message(message)))


def _one_line(message: str) -> str:
    """Escape what is not printable (newlines, control and terminal escape characters) so that
    a message quoting hostile input stays one harmless line."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in message)


def _unwrap_worker_message(message: str) -> str:
    """A DataLoader worker re-raises our error with its whole traceback as the message
    ("Caught DataError in DataLoader worker process 0. Original Traceback ..."); keep the
    original one line, which is the traceback's last."""
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = message.rstrip().splitlines()[-1]
        _, sep, text = last.partition(": ")
        return text if sep else last
    return message


class ConfigError(FtlabError):
    """A config key is unknown, has the wrong type, or an impossible value."""


class DataError(FtlabError):
    """A dataset is missing, malformed, or does not fit the configuration."""


class WeightsError(FtlabError):
    """Pretrained weights cannot be found, downloaded, or do not fit the architecture."""


class RunDirError(FtlabError):
    """A run folder would be overwritten, or cannot be resumed."""


class CheckpointError(FtlabError):
    """A checkpoint cannot be read (truncated, corrupt, not ftlab's, or unsafe to unpickle)."""


class FileWriteError(FtlabError):
    """A file could not be written (disk full, permissions); its previous version is intact."""

    exit_code = 1

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class CheckpointWriteError(FileWriteError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""

    exit_code = 1


class ExportError(FtlabError):
    """An exported model does not compute what the PyTorch network computes, or the export
    itself failed; nothing was written."""

    exit_code = 1


class TrainingDiverged(FtlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 1


class Stopped(FtlabError):
    """SIGTERM or SIGINT stopped a run after it saved a checkpoint; exit code 128 + signal."""

    label = "stopped"

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class NewerFormatError(FtlabError):
    """A file was written by a newer ftlab, in a format_version this one does not know.

    Not a `CheckpointError`: a checkpoint from the future is not damaged, so resuming must
    not fall back to an older checkpoint instead of saying to upgrade.
    """
