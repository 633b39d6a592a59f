"""Run folders: created once, never overwritten by accident, resumable.

Layout of `<train.output_dir>/<run name>/`: config.yaml (the resolved config), metrics.csv,
summary.json, last.pt, previous.pt (the checkpoint before last.pt), best.pt, log.txt,
tensorboard/, and .lock, which the process working in the folder holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftlab.errors import RunDirError
from ftlab.fileio import LockHeld, exclusive_lock, user_path
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
    run_folder_contents,
    training_started,
)


def run_dir_path(output_dir: str | Path, name: str) -> Path:
    return user_path(output_dir, "train.output_dir") / name


def check_can_create(path: Path, overwrite: bool, config_file: Path | None = None) -> None:
    """Refuse a non-empty folder unless `overwrite`, and only overwrite ftlab run folders.

    A folder that holds nothing but `config_file` as its config.yaml is a run prepared and
    not started (`ftlab suite` writes each run's config before any starts, then runs
    `ftlab train RUN/config.yaml`): it is the run's own folder, accepted as it is.

    Called before anything expensive, so a forgotten --overwrite fails in a second, and
    again by `create_run_dir` right before writing.
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a folder; choose another train.run_name")
    if path.is_dir() and run_folder_contents(path) and not prepared(path, config_file):
        if not overwrite:
            raise RunDirError(f"run folder {path} already exists; pass --resume {path} to "
                              "continue it, --overwrite to start it again, or set "
                              "train.run_name to a new name")
        if not (path / CONFIG).is_file():
            raise RunDirError(f"--overwrite refused: {path} is not an ftlab run folder (no "
                              f"{CONFIG}); remove it yourself or choose another train.run_name")


def create_run_dir(path: Path, overwrite: bool, config_file: Path | None = None) -> Path:
    """An empty run folder at `path` (an old ftlab run there is deleted when `overwrite`),
    or the prepared folder of `config_file` as it is (its config is replaced, atomically)."""
    check_can_create(path, overwrite, config_file)
    doomed = [] if prepared(path, config_file) else run_folder_contents(path)
    for item in doomed:
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    make_dir(path)
    return path


def prepared(path: Path, config_file: Path | None) -> bool:
    """`path` holds only its config.yaml, and that file is `config_file`: nothing has trained
    there yet, and the config being started is the one the folder was prepared with."""
    if config_file is None or training_started(path):
        return False
    try:
        return os.path.samefile(config_file, path / CONFIG)
    except OSError:  # either file is missing or unreadable: not that folder's own config
        return False


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
    lock = exclusive_lock(path / LOCK)
    try:
        lock.__enter__()
    except LockHeld as held:
        raise RunDirError(f"run folder {path} is in use by another ftlab process (pid "
                          f"{held.holder}); wait for it to finish or stop it, or set "
                          "train.run_name to a new name") from None
    with contextlib.ExitStack() as held_until_done:
        held_until_done.push(lock)
        for stale in path.glob(".*.tmp"):  # half-written files of a killed process
            stale.unlink(missing_ok=True)
        yield


def existing_run_dir(path: str | Path) -> Path:
    """A folder that `--resume` can continue: it must hold the saved config."""
    path = user_path(path, "run folder")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"cannot resume {path}: no {CONFIG} there; pass the folder of an "
                          "earlier ftlab train run")
    return path
