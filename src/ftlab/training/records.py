"""What a run leaves behind: metrics.csv, TensorBoard events, summary.json.

metrics.csv is rewritten (atomically) from the full history after every epoch, and the
history also lives in the checkpoint; so after a crash and resume the file holds exactly the
epochs of the checkpoint, never a duplicated or half-written row.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ftlab.fileio import atomic_write_text
from ftlab.runfiles import RunSummary
from ftlab.training import rundir

TENSORBOARD_TAGS = {
    "train_loss": "train/loss", "train_top1": "train/top1", "val_loss": "val/loss",
    "val_top1": "val/top1", "val_top5": "val/top5", "epoch_time_s": "time/epoch_s",
    "train_time_s": "time/train_s", "images_per_s": "throughput/images_per_s",
    "skipped_images": "data/skipped_images", "skipped_steps": "train/skipped_steps",
}
BASE_COLUMNS = ["epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                "epoch_time_s", "train_time_s", "images_per_s", "skipped_images", "skipped_steps"]


def metric_columns(group_names: list[str]) -> list[str]:
    """epoch, one `lr/<group>` column per param group, then the metrics."""
    return BASE_COLUMNS[:1] + [f"lr/{name}" for name in group_names] + BASE_COLUMNS[1:]


def write_metrics_csv(run_dir: Path, columns: list[str], history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    atomic_write_text(run_dir / rundir.METRICS, buffer.getvalue())


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    atomic_write_text(run_dir / rundir.SUMMARY, summary.to_json())


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.8g}" if isinstance(value, float) else str(value)


class TensorBoardLog:
    """Epoch-level scalars; `purge_step` drops events a resumed run is about to repeat."""

    def __init__(self, run_dir: Path, first_epoch: int, enabled: bool) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / rundir.TENSORBOARD),
                                        purge_step=first_epoch)

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key == "epoch" or value is None or key in ("train_skipped", "val_skipped"):
                continue
            self.writer.add_scalar(TENSORBOARD_TAGS.get(key, key), value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
