"""The numbers a run reports: summary.json's contents (`RunSummary`) and the lines printed
along the way."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from statistics import fmean
from typing import Any

import torch
import torchvision

from ftlab.runfiles import RunSummary
from ftlab.version import __version__
from ftlab.training import rundir
from ftlab.assembly.experiment import Experiment
from ftlab.training.loop import EvalStats


def tested_checkpoint(exp: Experiment) -> str:
    """best.pt (the best validation epoch's), or last.pt for a run without a validation
    split (data.val_fraction=0), where nothing can choose an epoch."""
    return rundir.BEST if exp.val_loader is not None else rundir.LAST


def build_summary(exp: Experiment, run_dir: Path, history: list[dict[str, Any]],
                  best: dict[str, Any], test: EvalStats | None, test_seconds: float,
                  diagnostics: dict[str, Any] | None = None, status: str = "complete"
                  ) -> RunSummary:
    """Everything a results table needs about one run, read from its own history.

    `test`: the best checkpoint on test (None: the run does not evaluate on test).
    `diagnostics`: the run's feature check and warnings (`ftlab.training.diagnostics`).
    `status`: complete, or pruned (its epoch hook ended it before `train.epochs`).
    """
    diagnostics = diagnostics or {}
    config = exp.config
    trainable, total = exp.parameter_counts()
    epoch_times = [row["epoch_time_s"] for row in history]
    last = history[-1]
    return RunSummary(
        run=run_dir.name,
        run_dir=str(run_dir),
        status=status,
        dataset=config.data.name,
        num_classes=exp.data.num_classes,
        split_sizes=exp.data.sizes(),
        resolution=exp.data.input.resolution,
        arch=exp.built.arch,
        weights=exp.built.weights.describe(),
        strategy=exp.strategy.name,
        optimizer=config.optim.name,
        schedule=config.schedule.name,
        seed=config.train.seed,
        epochs=len(history),
        epochs_planned=config.train.epochs,
        best_epoch=best["epoch"],
        best_val_top1=best.get("val_top1"),
        best_val_top5=best.get("val_top5"),
        best_val_loss=best.get("val_loss"),
        final_val_top1=last["val_top1"],
        final_train_top1=last["train_top1"],
        test_top1=test.top1 if test else None,
        test_top5=test.top5 if test else None,
        test_loss=test.loss if test else None,
        test_checkpoint=tested_checkpoint(exp) if test else None,
        trainable_params=trainable,
        total_params=total,
        epoch_time_s=fmean(epoch_times),
        train_time_s=sum(row["train_time_s"] for row in history),
        wall_time_s=sum(epoch_times) + test_seconds,
        images_per_s=fmean(row["images_per_s"] for row in history),
        skipped_images={"train": max(row.get("train_skipped", 0) for row in history),
                        "val": max(row.get("val_skipped", 0) for row in history),
                        "test": test.skipped if test else 0},
        memory_efficient=exp.config.train.memory_efficient,
        warnings=list(diagnostics.get("warnings", [])),
        feature_check=diagnostics.get("feature_check"),
        **_peak_memory(exp.settings.device),
        device=_device_name(exp.settings.device),
        versions={"ftlab": __version__, "torch": torch.__version__,
                  "torchvision": torchvision.__version__, "python": platform.python_version()},
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def format_epoch(row: dict[str, Any], epochs: int, improved: bool) -> str:
    lrs = [v for k, v in row.items() if k.startswith("lr/")]
    text = (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} "
            f"top1 {row['train_top1']:.2f}%")
    if row["val_top1"] is not None:
        text += (f"  val loss {row['val_loss']:.4f} top1 {row['val_top1']:.2f}% "
                 f"top5 {row['val_top5']:.2f}%")
    text += (f"  lr {max(lrs):.2e}  {row['epoch_time_s']:.1f}s  "
             f"{row['images_per_s']:.0f} img/s")
    return text + ("  *best*" if improved else "")


def format_summary(s: RunSummary) -> str:
    """The one-screen summary printed at the end of a run."""
    sizes = s.split_sizes
    share = 100.0 * s.trainable_params / s.total_params
    best = (f"top1 {s.best_val_top1:.2f}%  top5 {s.best_val_top5:.2f}%  (epoch "
            f"{s.best_epoch})" if s.best_val_top1 is not None else "no validation split")
    lines = [
        "─" * 30 + " ftlab run summary " + "─" * 30,
        f"run         {s.run_dir}",
        f"model       {s.arch}, weights {s.weights}, strategy {s.strategy}",
        f"data        {s.dataset}: {sizes['train']} train / {sizes['val']} val / "
        f"{sizes['test']} test, {s.num_classes} classes, {s.resolution} px",
        f"params      {s.trainable_params:,} trainable of {s.total_params:,} "
        f"({share:.1f}%)",
        f"best val    {best}",
        _test_line(s),
        f"time        {s.epochs} epochs in {_duration(s.wall_time_s)}, "
        f"{s.epoch_time_s:.1f} s/epoch, {s.images_per_s:.0f} train img/s on {s.device}",
        *_skipped_line(s.skipped_images),
        *[f"warning     {text.split(':')[0]} (see {rundir.LOG} and {rundir.SUMMARY})"
          for text in s.warnings],
        f"files       {rundir.CONFIG} {rundir.METRICS} {rundir.SUMMARY} {rundir.LAST} "
        f"{rundir.BEST} {rundir.LOG}",
        "─" * 79,
    ]
    if s.status == "pruned":
        lines.insert(1, f"status      pruned after epoch {s.epochs} of {s.epochs_planned}")
    return "\n".join(lines)


def _test_line(s: RunSummary) -> str:
    if s.test_top1 is None:
        return "test        not evaluated (train.evaluate_test=false)"
    return (f"test        top1 {s.test_top1:.2f}%  top5 {s.test_top5:.2f}%  "
            f"(checkpoint {s.test_checkpoint})")


def _skipped_line(skipped: dict[str, int]) -> list[str]:
    if not any(skipped.values()):
        return []
    return [f"skipped     unreadable images: {skipped['train']} train, {skipped['val']} val, "
            f"{skipped['test']} test (see the warnings in {rundir.LOG})"]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _peak_memory(device: torch.device) -> dict[str, Any]:
    """The run's peak memory: the CUDA allocator's, else this process's maximum RSS (which
    includes Python, the framework and data loading, and covers only this process: after a
    resume, only the resumed part)."""
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device),
                "peak_memory_kind": "cuda max_memory_allocated"}
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_bytes": rss if sys.platform == "darwin" else rss * 1024,
            "peak_memory_kind": "process max RSS"}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
