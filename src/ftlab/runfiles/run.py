"""The typed files of a run folder: the checkpoint (last.pt, best.pt, previous.pt) and
summary.json.

Training writes them through `to_dict`; resuming, reports, suites and `ftlab diff` read them
through `from_dict`, which checks every key, upgrades older `format_version`s and refuses
newer ones (`ftlab.runfiles.versions`). The checkpoint's tensors and torch I/O stay with
training (`ftlab.training.checkpoint`): this module needs no torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ftlab.errors import CheckpointError, RunDirError
from ftlab.runfiles.fields import field_values, read_json
from ftlab.runfiles.versions import checked_version

CHECKPOINT_VERSION = 1
"""The checkpoint layout this code writes; 1 is also ftlab 0.1's (its marker says /1)."""
CHECKPOINT_MARKER = "ftlab-checkpoint"
"""`format: "ftlab-checkpoint/<format_version>"` marks a torch file as an ftlab checkpoint."""
SUMMARY_VERSION = 2
"""The summary.json layout this code writes. 1 is ftlab 0.1's (no key); 2 allows a run
without test numbers (`train.evaluate_test=false`) and one pruned before its last epoch."""


@dataclass(frozen=True, kw_only=True)
class PartialEpoch:
    """An epoch stopped part-way (SIGTERM, SIGINT), to be continued from where it stopped."""

    epoch: int
    """The stopped epoch (1-based); the checkpoint's `epoch` is the one before it."""
    tally: dict[str, Any]
    """The epoch's running sums so far (`ftlab.training.loop.EpochTally` as a dict)."""
    rng: dict[str, Any]
    """The random state at the stop, restored before the epoch continues."""
    lrs: dict[str, float]
    """The epoch's learning rates per param group, `lr/<group>` as in metrics.csv."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # tensors not copied

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: object) -> PartialEpoch:
        return cls(**field_values(cls, values, "checkpoint's stopped epoch", source,
                                  CheckpointError))


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """Everything needed to continue a run exactly. Only tensors and plain containers, so
    `torch.load(weights_only=True)` reads it; `model` has plain torchvision state_dict keys."""

    format_version: int = CHECKPOINT_VERSION
    epoch: int
    """Epochs finished (a stopped epoch is in `partial`)."""
    model: dict[str, Any]
    """The model's state_dict (tensors)."""
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None = None
    """The fp16 gradient scaler's state; None without one."""
    rng: dict[str, Any]
    """Random states at the end of `epoch` (python, torch, cuda)."""
    config: dict[str, Any]
    """The run's resolved config, as `ftlab.config.config_to_dict` writes it."""
    strategy: str
    strategy_state: dict[str, Any]
    trainable: list[str]
    """Names of the parameters the strategy trains, checked again on resume."""
    arch: str
    classes: list[str]
    history: list[dict[str, Any]]
    """One metrics row per finished epoch (metrics.csv is rewritten from it)."""
    best: dict[str, Any]
    """The best validation epoch so far: epoch, val_top1, val_top5, val_loss."""
    partial: PartialEpoch | None = None
    diagnostics: dict[str, Any] = field(default_factory=lambda: {"warnings": []})
    """The feature check and the warnings so far, for summary.json."""

    def to_dict(self) -> dict[str, Any]:
        """The dict `torch.save` writes; its `format` marker keeps it readable by ftlab 0.1
        while the format_version is 1."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["partial"] = self.partial.to_dict() if self.partial else None
        return {"format": f"{CHECKPOINT_MARKER}/{self.format_version}", **values}

    @classmethod
    def from_dict(cls, values: Any, source: object) -> Checkpoint:
        """A checkpoint from what `torch.load` gave for the file `source`, upgraded to this
        code's format_version (version 1, ftlab 0.1's, needs no change)."""
        if checkpoint_version(values, source) is None:
            raise CheckpointError(f"{source} is not an ftlab checkpoint (no "
                                  f"'{CHECKPOINT_MARKER}/{CHECKPOINT_VERSION}' marker)")
        kwargs = field_values(cls, values, "ftlab checkpoint", source, CheckpointError)
        if kwargs.get("partial") is not None:
            kwargs["partial"] = PartialEpoch.from_dict(kwargs["partial"], source)
        return cls(**kwargs)


def checkpoint_version(values: Any, source: object) -> int | None:
    """The format_version of an ftlab checkpoint's dict (None when `values` is not one, e.g.
    a plain state_dict); a checkpoint of a newer ftlab is refused."""
    marker = values.get("format") if isinstance(values, dict) else None
    if not isinstance(marker, str) or not marker.startswith(f"{CHECKPOINT_MARKER}/"):
        return None
    suffix = marker.removeprefix(f"{CHECKPOINT_MARKER}/")
    return checked_version(values, CHECKPOINT_VERSION, "checkpoint", source, CheckpointError,
                           default=int(suffix) if suffix.isdigit() else -1)


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """summary.json: everything a results table needs about one finished run."""

    format_version: int = SUMMARY_VERSION
    run: str
    """The run folder's name."""
    run_dir: str
    """The run folder where the run was trained (it may have moved since)."""
    status: str
    """complete (trained train.epochs), or pruned (ended early by its search)."""
    dataset: str
    num_classes: int
    split_sizes: dict[str, int]
    """Images per split: train, val, test."""
    resolution: int
    arch: str
    weights: str
    """The starting weights, described."""
    strategy: str
    optimizer: str
    schedule: str
    seed: int
    epochs: int
    """Epochs trained."""
    epochs_planned: int | None = None
    """train.epochs (more than `epochs` when pruned; None in version 1 files)."""
    best_epoch: int
    best_val_top1: float | None
    """None without a validation split (then the last epoch is the best)."""
    best_val_top5: float | None
    best_val_loss: float | None
    final_val_top1: float | None
    final_train_top1: float
    test_top1: float | None
    """Top-1 % on the test split, of the `test_checkpoint`; None when the run did not
    evaluate on test (version 2)."""
    test_top5: float | None
    test_loss: float | None
    test_checkpoint: str | None
    trainable_params: int
    total_params: int
    epoch_time_s: float
    """Mean seconds per epoch."""
    train_time_s: float
    wall_time_s: float
    images_per_s: float
    """Mean training throughput."""
    skipped_images: dict[str, int] = field(
        default_factory=lambda: {"train": 0, "val": 0, "test": 0})
    """Unreadable images skipped per split."""
    memory_efficient: bool = False
    warnings: list[str] = field(default_factory=list)
    feature_check: dict[str, Any] | None = None
    peak_memory_bytes: int | None
    peak_memory_kind: str
    """What `peak_memory_bytes` measured: the CUDA allocator's peak or the process's RSS."""
    device: str
    versions: dict[str, str] = field(default_factory=dict)
    """ftlab, torch, torchvision and python versions of the run."""
    finished_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values: Any, source: object) -> RunSummary:
        """summary.json's values read from `source`, upgraded to this code's format_version
        (version 1, ftlab 0.1's, needs no change: it lacks only `epochs_planned`)."""
        if not isinstance(values, dict):
            raise RunDirError(f"{source} is not an ftlab run summary (not a JSON object)")
        checked_version(values, SUMMARY_VERSION, "run summary", source, RunDirError)
        return cls(**field_values(cls, values, "run summary", source, RunDirError))


def read_summary(path: Path) -> RunSummary:
    """summary.json, checked; one line naming the file when it cannot be read."""
    values = read_json(path, "train the run again or resume it to rewrite it")
    return RunSummary.from_dict(values, path)


__all__ = ["CHECKPOINT_MARKER", "CHECKPOINT_VERSION", "SUMMARY_VERSION", "Checkpoint",
           "PartialEpoch", "RunSummary", "checkpoint_version", "read_summary"]
