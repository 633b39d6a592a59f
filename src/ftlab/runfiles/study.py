"""The record of one tuning study, tune/<study>/study.json: every trial, the best setting,
what the search cost, and which hyperparameters mattered.

`ftlab tune` writes it from its Optuna study once the search of a dataset x strategy has
ended; the report reads it, so that reports need neither Optuna nor the study's storage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.fields import field_values, read_json
from ftlab.runfiles.versions import checked_version

STUDY_VERSION = 1
"""The study.json layout this code writes."""


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One trial of a study, as it ended."""

    number: int
    state: str
    """complete, pruned or fail (Optuna's states, in lower case)."""
    value: float | None
    """Best validation top-1 % over its epochs (None for a failed trial)."""
    params: dict[str, Any]
    """The drawn hyperparameters, by dotted config key."""
    epochs: int
    """Epochs it trained (fewer than the budget when pruned)."""
    run: str | None = None
    """Its run folder, relative to the study folder."""
    error: str | None = None
    """Why it failed or was cut short (divergence, a stop signal)."""
    best_epoch: int | None = None
    """The epoch of its best validation top-1 (the first, in a tie); None: none reported."""
    step_peak_bytes: int | None = None
    """With tune.memory_budget: its training step's measured peak (None: no budget)."""

    @classmethod
    def from_dict(cls, values: Any, source: object) -> TrialRecord:
        if not isinstance(values, Mapping):
            raise RunDirError(f"{source} is not an ftlab study record (a trial is not a JSON "
                              "object); run ftlab tune again to rewrite it")
        return cls(**field_values(cls, values, "study trial", source, RunDirError))


@dataclass(frozen=True, kw_only=True)
class StudyRecord:
    """study.json."""

    format_version: int = STUDY_VERSION
    study: str
    """The study's name in its storage: <suite>/<dataset>/<strategy>."""
    dataset: str | None
    """The grid's dataset label (None when the grid has no datasets axis)."""
    strategy: str
    space: dict[str, dict[str, Any]]
    """The search space: key -> {kind, and its bounds or choices}."""
    sampler: str
    pruner: str
    epochs: int
    """The budget of one trial (train.epochs)."""
    trials: list[TrialRecord]
    best: TrialRecord | None
    """The complete trial with the highest value (None when no trial completed)."""
    epochs_trained: int
    """Epochs trained by the complete and pruned trials together."""
    epochs_without_pruning: int
    """What those trials would have trained without pruning (trials x epochs)."""
    refit: str = "train"
    """What the final runs train on: train+val (every labelled image) or train (the
    trials' training split); records written before tune.refit existed are train."""
    final_epochs: int | None = None
    """The final runs' train.epochs: the best trial's best epoch (refit train+val) or the
    trials' budget (train); None when no trial completed."""
    importance: dict[str, float] = field(default_factory=dict)
    """How much each hyperparameter sets the best trials apart (PED-ANOVA, shares summing to
    1); empty with fewer than 3 complete trials or a one-key space."""

    @property
    def epoch_ratio(self) -> float | None:
        """epochs_trained / epochs_without_pruning: what pruning left of the search's cost."""
        return (self.epochs_trained / self.epochs_without_pruning
                if self.epochs_without_pruning else None)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["trials"] = [_plain(t) for t in self.trials]
        values["best"] = _plain(self.best) if self.best else None
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values: Any, source: object) -> StudyRecord:
        if not isinstance(values, Mapping) or not isinstance(values.get("trials"), list):
            raise RunDirError(f"{source} is not an ftlab study record (damaged or from another "
                              "tool); run ftlab tune again to rewrite it")
        checked_version(values, STUDY_VERSION, "study record", source, RunDirError)
        kwargs = field_values(cls, {**values, "trials": [], "best": None}, "study record",
                              source, RunDirError)
        kwargs["trials"] = [TrialRecord.from_dict(t, source) for t in values["trials"]]
        best = values.get("best")
        kwargs["best"] = TrialRecord.from_dict(best, source) if best is not None else None
        return cls(**kwargs)


def _plain(trial: TrialRecord) -> dict[str, Any]:
    return {f.name: getattr(trial, f.name) for f in fields(trial)}


def read_study_record(path: Path) -> StudyRecord:
    """study.json, checked; one line naming the file when it cannot be read."""
    values = read_json(path, "run ftlab tune again to rewrite it")
    return StudyRecord.from_dict(values, path)
