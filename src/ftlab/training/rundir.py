"""Run folders: created once, never overwritten by accident, resumable.

Layout of `<train.output_dir>/<run name>/`: config.yaml (the resolved config), metrics.csv,
summary.json, last.pt, previous.pt (the checkpoint before last.pt), best.pt, log.txt,
tensorboard/, and .lock, which the process working in the folder holds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftlab.errors import RunDirError
from ftlab.fileio import user_path
from ftlab.runfiles import (  # noqa: F401
    BEST,
    CONFIG,
    LAST,
    LOCK,
    LOG,
    METRICS,
    PREVIOUS,
    SUMMARY,
    TENSORBOARD,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; ftlab's own runs are POSIX
    fcntl = None  # type: ignore[assignment]


def run_dir_path(output_dir: str | Path, name: str) -> Path:
    return user_path(output_dir, "train.output_dir") / name


def check_can_create(path: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`, and only overwrite ftlab run folders.

    Called before anything expensive, so a forgotten --overwrite fails in a second, and
    again by `create_run_dir` right before writing.
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a folder; choose another train.run_name")
    if path.is_dir() and _contents(path):
        if not overwrite:
            raise RunDirError(f"run folder {path} already exists; pass --resume {path} to "
                              "continue it, --overwrite to start it again, or set "
                              "train.run_name to a new name")
        if not (path / CONFIG).is_file():
            raise RunDirError(f"--overwrite refused: {path} is not an ftlab run folder (no "
                              f"{CONFIG}); remove it yourself or choose another train.run_name")


def create_run_dir(path: Path, overwrite: bool) -> Path:
    """An empty run folder at `path` (an old ftlab run there is deleted when `overwrite`)."""
    check_can_create(path, overwrite)
    for item in _contents(path) if path.is_dir() else []:
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    make_dir(path)
    return path


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create run folder {path} ({err.strerror or err}); set "
                          "train.output_dir to a writable folder") from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `<run>/.lock` (an flock) while working in the folder, so that a second process
    started on the same run refuses instead of interleaving its writes with ours.

    The kernel drops the lock when its process dies however it dies, so a killed run never
    leaves a stale lock behind.
    """
    make_dir(path)
    if fcntl is None:
        yield
        return
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(f"run folder {path} is in use by another ftlab process (pid "
                              f"{holder}); wait for it to finish or stop it, or set "
                              "train.run_name to a new name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for stale in path.glob(".*.tmp"):  # half-written files of a killed process
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _contents(path: Path) -> list[Path]:
    """What a run folder holds, apart from its lock file and temporaries of a killed write."""
    return [item for item in path.iterdir()
            if item.name != LOCK and not (item.name.startswith(".") and item.suffix == ".tmp")]


def existing_run_dir(path: str | Path) -> Path:
    """A folder that `--resume` can continue: it must hold the saved config."""
    path = user_path(path, "run folder")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"cannot resume {path}: no {CONFIG} there; pass the folder of an "
                          "earlier ftlab train run")
    return path
