"""eval.json: what `ftlab eval` measured of one network on one split of one dataset.

`ftlab eval` writes it with the per-class table, the confusion matrix and the per-image
predictions beside it; a suite's report reads it back for its results table (the row of a
pretrained network evaluated with its own head, say), without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.fields import field_values, read_json
from ftlab.runfiles.versions import checked_version

EVAL_VERSION = 1
"""The eval.json layout this code writes."""


@dataclass(frozen=True, kw_only=True)
class EvalRecord:
    """eval.json."""

    format_version: int = EVAL_VERSION
    target: dict[str, Any]
    """What was evaluated: label, kind (checkpoint or pretrained), source, arch, strategy,
    classes (outputs of its head), epoch (of the checkpoint)."""
    dataset: str
    root: str | None
    split: str
    """test, val or train (train images with the evaluation preprocessing)."""
    images: int
    """Images evaluated (unreadable ones skipped are not counted)."""
    skipped: int
    top1: float
    """Top-1 accuracy, %, as training's evaluation computes it."""
    top5: float
    loss: float
    """Mean cross-entropy over the head's outputs."""
    ece: float
    """Expected calibration error (%, of the top-1 confidence, equal-width bins)."""
    bins: int
    per_class: list[dict[str, Any]]
    """Per class of the data: class, images, top1 (%; None without images)."""
    most_confused: list[dict[str, Any]]
    """The largest off-diagonal cells: true, predicted, images, share (% of the true class)."""
    input: dict[str, Any]
    """The evaluation preprocessing: resolution, resize, mean, std."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, values: Any, source: object) -> EvalRecord:
        if not isinstance(values, dict):
            raise RunDirError(f"{source} is not an ftlab eval.json (not a JSON object); run "
                              "ftlab eval again to rewrite it")
        checked_version(values, EVAL_VERSION, "eval.json", source, RunDirError)
        return cls(**field_values(cls, values, "eval.json", source, RunDirError))


def read_eval_record(path: Path) -> EvalRecord:
    return EvalRecord.from_dict(read_json(path, "run ftlab eval again to rewrite it"), path)
