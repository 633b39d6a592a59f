"""From per-image outcomes to `ftlab eval`'s numbers and files.

Top-1 and top-5 are computed as training's evaluation computes them (`topk` of the logits
against the true class's output), so the two agree image for image. Calibration is the
expected calibration error of the top-1 confidence over equal-width bins (Guo et al.,
"On Calibration of Modern Neural Networks", 2017).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ftlab.data import DataBundle
from ftlab.errors import DataError
from ftlab.fileio import atomic_write_text
from ftlab.inference.figures import draw_confusion, draw_reliability
from ftlab.inference.target import Target
from ftlab.report.plots import save_data
from ftlab.runfiles import (
    EVAL_CONFUSION,
    EVAL_JSON,
    EVAL_PER_CLASS,
    EVAL_PREDICTIONS,
    EvalRecord,
)

MOST_CONFUSED = 10


@dataclass
class Outcomes:
    """Per image: its data class, the network output that means it, the predicted output,
    the prediction's confidence, whether the class is in the top 5, and its loss."""

    parts: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    requested: int = 0

    @classmethod
    def empty(cls) -> Outcomes:
        return cls({key: [] for key in ("labels", "targets", "predicted", "confidence",
                                        "top5", "loss", "positions")})

    def add(self, logits: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
            positions: torch.Tensor) -> None:
        best = logits.topk(min(5, logits.shape[1]), dim=1).indices
        values = {"labels": labels, "targets": targets, "predicted": best[:, 0],
                  "confidence": logits.softmax(dim=1).gather(1, best[:, :1])[:, 0],
                  "top5": (best == targets[:, None]).any(dim=1),
                  "loss": F.cross_entropy(logits, targets, reduction="none").double(),
                  "positions": positions}
        for key, value in values.items():
            self.parts[key].append(value.detach().cpu())

    def get(self, key: str) -> torch.Tensor:
        parts = self.parts[key]
        return torch.cat(parts) if parts else torch.zeros(0)

    def positions(self) -> list[int]:
        return self.get("positions").long().tolist()

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.parts["labels"])


@dataclass(frozen=True)
class Tallies:
    """What eval.json and the figures are made from, computed once."""

    correct: torch.Tensor
    """Per image: the top-1 prediction is the true class."""
    confusion: torch.Tensor
    calibration: dict[str, Any]


def tally(outcomes: Outcomes, classes: list[str], mapping: list[int], bins: int,
          split: str) -> Tallies:
    if outcomes.count == 0:
        raise DataError(f"no image of the {split} split could be read; check the data folder")
    correct = outcomes.get("predicted") == outcomes.get("targets")
    return Tallies(correct, confusion(outcomes, classes, mapping),
                   calibration(outcomes.get("confidence"), correct, bins))


def eval_record(target: Target, data: DataBundle, split: str, outcomes: Outcomes,
                tallies: Tallies, bins: int) -> EvalRecord:
    n = outcomes.count
    correct = tallies.correct
    spec = target.input_spec()
    return EvalRecord(
        target=target.describe(), dataset=target.config.data.name, root=target.config.data.root,
        split=split, images=n, skipped=outcomes.requested - n,
        top1=100.0 * correct.sum().item() / n,
        top5=100.0 * outcomes.get("top5").sum().item() / n,
        loss=outcomes.get("loss").mean().item(),
        ece=tallies.calibration["ece"], bins=bins,
        per_class=per_class(outcomes, data.classes),
        most_confused=most_confused(tallies.confusion, data.classes),
        input={"resolution": spec.resolution, "resize": spec.eval_resize,
               "mean": list(spec.mean), "std": list(spec.std)})


def calibration(confidence: torch.Tensor, correct: torch.Tensor, bins: int) -> dict[str, Any]:
    """Per equal-width confidence bin: images, mean confidence and accuracy (%), and the
    expected calibration error: the image-weighted mean gap between the two."""
    index = (confidence * bins).long().clamp(max=bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        chosen = index == b
        count = int(chosen.sum())
        conf = 100.0 * confidence[chosen].mean().item() if count else None
        acc = 100.0 * correct[chosen].float().mean().item() if count else None
        if count:
            ece += count / len(confidence) * abs(acc - conf)  # type: ignore[operator]
        rows.append({"low": b / bins, "high": (b + 1) / bins, "images": count,
                     "confidence": conf, "accuracy": acc})
    return {"ece": ece, "bins": rows}


def per_class(outcomes: Outcomes, classes: list[str]) -> list[dict[str, Any]]:
    labels = outcomes.get("labels").long()
    correct = outcomes.get("predicted") == outcomes.get("targets")
    rows = []
    for index, name in enumerate(classes):
        chosen = labels == index
        count = int(chosen.sum())
        rows.append({"class": name, "images": count,
                     "top1": 100.0 * correct[chosen].float().mean().item() if count else None})
    return rows


def confusion(outcomes: Outcomes, classes: list[str], mapping: list[int]) -> torch.Tensor:
    """Counts: rows the true class, columns the predicted class of the data, then `other`
    (an output the data has no class for, such as ImageNet's 995 others)."""
    n = len(classes)
    column = {output: i for i, output in enumerate(mapping)}
    predicted = torch.tensor([column.get(int(p), n) for p in outcomes.get("predicted")],
                             dtype=torch.long)
    labels = outcomes.get("labels").long()
    matrix = torch.zeros(n, n + 1, dtype=torch.long)
    matrix.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    return matrix


def most_confused(matrix: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    names = [*classes, "other"]
    cells = []
    totals = matrix.sum(dim=1)
    for true, predicted in (matrix > 0).nonzero().tolist():
        if true != predicted:
            count = int(matrix[true, predicted])
            cells.append({"true": names[true], "predicted": names[predicted], "images": count,
                          "share": 100.0 * count / int(totals[true])})
    cells.sort(key=lambda c: (-c["images"], -c["share"], c["true"], c["predicted"]))
    return cells[:MOST_CONFUSED]


def write_outputs(folder: Path, record: EvalRecord, outcomes: Outcomes, target: Target,
                  classes: list[str], tallies: Tallies) -> list[Path]:
    """eval.json last: it marks a complete output."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix, calib = tallies.confusion, tallies.calibration
    files = [_write_csv(folder / EVAL_PER_CLASS, ["class", "images", "top1"],
                        [[r["class"], r["images"], _pct(r["top1"])] for r in record.per_class]),
             _write_csv(folder / EVAL_CONFUSION, ["true \\ predicted", *classes, "other"],
                        [[name, *row] for name, row in zip(classes, matrix.tolist())]),
             _write_csv(folder / EVAL_PREDICTIONS, _prediction_header(),
                        _prediction_rows(outcomes, target, classes))]
    title = f"{target.label} on {record.dataset} {record.split}"
    files += save_data(draw_confusion(matrix, classes, f"Confusion: {title}"),
                       {"classes": classes, "columns": [*classes, "other"],
                        "counts": matrix.tolist()}, folder / "confusion")
    files += save_data(draw_reliability(calib["bins"], calib["ece"], f"Calibration: {title}"),
                       calib, folder / "reliability")
    atomic_write_text(folder / EVAL_JSON, record.to_json())
    return [*files, folder / EVAL_JSON]


def _prediction_header() -> list[str]:
    return ["index", "path", "label", "predicted", "confidence", "correct"]


def _prediction_rows(outcomes: Outcomes, target: Target, classes: list[str]) -> list[list[Any]]:
    labels = outcomes.get("labels").long().tolist()
    predicted = outcomes.get("predicted").long().tolist()
    confidence = outcomes.get("confidence").tolist()
    targets = outcomes.get("targets").long().tolist()
    return [[position, path, classes[label], target.classes[pred], f"{conf:.6f}",
             int(pred == goal)]
            for position, path, label, pred, conf, goal in zip(
                outcomes.positions(), outcomes.paths, labels, predicted, confidence, targets)]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def eval_lines(record: EvalRecord, weakest: int = 5) -> list[str]:
    """What `ftlab eval` prints: the numbers, the weakest classes, the commonest confusions."""
    skipped = f", {record.skipped} unreadable skipped" if record.skipped else ""
    lines = [f"{record.target['label']} on {record.dataset} {record.split} ({record.images} "
             f"images{skipped}): top-1 {record.top1:.2f} %  top-5 {record.top5:.2f} %  "
             f"loss {record.loss:.4f}  ECE {record.ece:.2f} %"]
    rated = sorted((r for r in record.per_class if r["top1"] is not None),
                   key=lambda r: (r["top1"], r["class"]))
    if len(rated) > 1:
        lines.append("weakest classes: " + ", ".join(
            f"{r['class']} {r['top1']:.1f} %" for r in rated[:weakest]))
    if record.most_confused:
        lines.append("most confused: " + ", ".join(
            f"{c['true']} -> {c['predicted']} {c['images']} ({c['share']:.1f} %)"
            for c in record.most_confused[:weakest]))
    return lines
