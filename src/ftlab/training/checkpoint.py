"""Checkpoints: everything needed to continue a run exactly, written atomically.

What a checkpoint holds is `ftlab.runfiles.Checkpoint` (the model with plain torchvision
state_dict keys, optimizer, scheduler, gradient scaler, the finished epoch, random states,
config, strategy, class names, the metric history, a stopped epoch); this module writes and
reads it with torch. It contains only tensors and plain containers, so it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

from ftlab.errors import CheckpointError, CheckpointWriteError, FileWriteError
from ftlab.fileio import atomic_write_bytes, torch_bytes, torch_load_safely
from ftlab.runfiles import LAST, PREVIOUS, Checkpoint

log = logging.getLogger("ftlab")


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(checkpoint: Checkpoint, *paths: Path, previous: Path | None = None) -> None:
    """Serialise once, then write each path atomically (temp file, fsync, rename).

    With `previous`, the file the last path replaces is kept there: a checkpoint damaged
    later (a bad disk, a stray copy) then still has a good predecessor to resume from.
    """
    data = torch_bytes(checkpoint.to_dict())
    for index, path in enumerate(paths):
        backup = previous if index == len(paths) - 1 else None
        try:
            atomic_write_bytes(path, data, backup=backup)
        except FileWriteError as err:
            raise CheckpointWriteError(f"could not write checkpoint {path} ({err.reason}); the "
                                       "previous checkpoint is intact — free space or fix "
                                       "permissions, then resume") from None


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint at `path`, checked and upgraded; one from a newer ftlab is refused
    (`NewerFormatError`)."""
    return Checkpoint.from_dict(torch_load_safely(path, "checkpoint"), path)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint to resume from: last.pt, or previous.pt when last.pt is missing or
    unreadable (with a warning naming the problem); None when the run never saved one.
    A last.pt from a newer ftlab is refused, not passed over for an older previous.pt."""
    last, previous = run_dir / LAST, run_dir / PREVIOUS
    if not last.is_file() and not previous.is_file():
        return None
    try:
        return read_checkpoint(last)
    except CheckpointError as err:
        if not previous.is_file():
            raise
        try:
            checkpoint = read_checkpoint(previous)
        except CheckpointError:
            raise err from None
        log.warning("%s; resuming from %s (after epoch %d) instead", err, previous,
                    checkpoint.epoch)
        return checkpoint


def _as_python_state(state: Any) -> tuple:
    # Python's random state is (version, tuple of ints, gauss); lists come back from some
    # serialisers, tuples from torch.load. Normalise so random.setstate accepts it.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
