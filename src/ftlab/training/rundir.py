"""Run folders: created once, never overwritten by accident, resumable.

Layout of `<train.output_dir>/<run name>/`: config.yaml (the resolved config), metrics.csv,
summary.json, last.pt, best.pt, log.txt and tensorboard/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ftlab.errors import RunDirError
from ftlab.runfiles import BEST, CONFIG, LAST, LOG, METRICS, SUMMARY, TENSORBOARD  # noqa: F401


def run_dir_path(output_dir: str | Path, name: str) -> Path:
    return Path(output_dir).expanduser() / name


def check_can_create(path: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`, and only overwrite ftlab run folders.

    Called before anything expensive, so a forgotten --overwrite fails in a second, and
    again by `create_run_dir` right before writing.
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a folder; choose another train.run_name")
    if path.is_dir() and any(path.iterdir()):
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
    if path.is_dir() and any(path.iterdir()):
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create run folder {path} ({err.strerror or err}); set "
                          "train.output_dir to a writable folder") from None
    return path


def existing_run_dir(path: str | Path) -> Path:
    """A folder that `--resume` can continue: it must hold the saved config."""
    path = Path(path).expanduser()
    if not (path / CONFIG).is_file():
        raise RunDirError(f"cannot resume {path}: no {CONFIG} there; pass the folder of an "
                          "earlier ftlab train run")
    return path
