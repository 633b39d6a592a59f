"""The epoch loop of one run: train, validate, checkpoint, log; then test the best checkpoint.

Epoch e (1-based) reseeds the global RNGs from (seed, e) and the sampler from (seed, e), so
what happens in an epoch depends only on the state at its start. A checkpoint after every
epoch captures that state; resuming from it repeats the remaining epochs exactly.

In a data-parallel run every process runs this loop on its share of the data; only rank 0
writes files, and the others wait at a barrier after each checkpoint so that nobody reads a
checkpoint before it exists.
"""

from __future__ import annotations

import logging
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ftlab.config import config_to_dict, config_to_yaml
from ftlab.data import epoch_seed
from ftlab.efficient import MemoryPlan, apply_memory_plan
from ftlab.errors import CheckpointError, TrainingDiverged
from ftlab.fileio import atomic_write_text
from ftlab.training import rundir
from ftlab.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ftlab.training.experiment import Experiment
from ftlab.training.loop import NonFiniteLoss, evaluate, train_one_epoch
from ftlab.training.progress import Progress
from ftlab.training.records import TensorBoardLog, metric_columns, write_metrics_csv, write_summary
from ftlab.training.summary import build_summary, format_epoch, format_summary

log = logging.getLogger("ftlab")


class Trainer:
    """Runs the epochs of one experiment in one run folder."""

    def __init__(self, experiment: Experiment, run_dir: Path,
                 checkpoint: dict[str, Any] | None = None) -> None:
        self.exp = experiment
        self.run_dir = run_dir
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "val_top1": -1.0}
        self.epochs_done = 0
        self.memory_plan: MemoryPlan | None = None
        self.writes = experiment.dist.is_main
        if checkpoint is not None:
            self._restore(checkpoint)
        self.columns = metric_columns(experiment.group_names)

    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs, evaluate the best checkpoint on test, write the summary."""
        config = self.exp.config
        if self.writes:
            atomic_write_text(self.run_dir / rundir.CONFIG, config_to_yaml(config))
            write_metrics_csv(self.run_dir, self.columns, self.history)
        board = TensorBoardLog(self.run_dir, self.epochs_done + 1,
                               config.train.tensorboard and self.writes)
        try:
            for epoch in range(self.epochs_done + 1, config.train.epochs + 1):
                row = self._run_epoch(epoch)
                board.log(row)
        finally:
            board.close()
        return self._finish()

    # --- one epoch ---------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        exp, config = self.exp, self.exp.config
        start = time.perf_counter()
        seed = epoch_seed(config.train.seed, epoch, stream=2)
        torch.manual_seed(seed)
        random.seed(seed)
        exp.train_loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        lrs = {f"lr/{g['name']}": g["lr"] for g in exp.optimizer.param_groups}
        exp.strategy.begin_epoch(epoch, exp.model, exp.built.adapter)
        exp.strategy.set_train_mode(exp.model)
        self._plan_memory()
        model = exp.wrap_for_training()
        # Rank 0 shows its own share of the images, the others stay quiet.
        progress = Progress(config.train.progress if self.writes else "none",
                            len(exp.train_loader) * (exp.train_loader.batch_size or 1),
                            f"epoch {epoch}/{config.train.epochs}")
        try:
            stats = train_one_epoch(model, exp.train_loader, exp.optimizer, exp.scheduler,
                                    exp.scaler, exp.loss_fn, exp.settings, progress,
                                    penalty=partial(exp.strategy.penalty, exp.model),
                                    dist=exp.dist)
        except NonFiniteLoss as err:
            raise self._diverged(epoch, err) from None
        finally:
            progress.close()
        exp.dist.broadcast_buffers(exp.model)
        val = (evaluate(exp.model, exp.val_loader, exp.settings, exp.dist)
               if exp.val_loader else None)
        row: dict[str, Any] = {
            "epoch": epoch, **lrs, "train_loss": stats.loss, "train_top1": stats.top1,
            "val_loss": val.loss if val else None, "val_top1": val.top1 if val else None,
            "val_top5": val.top5 if val else None,
            "epoch_time_s": time.perf_counter() - start, "train_time_s": stats.seconds,
            "images_per_s": stats.images_per_s,
            "skipped_images": stats.skipped + (val.skipped if val else 0),
            "train_skipped": stats.skipped, "val_skipped": val.skipped if val else 0,
        }
        if row["skipped_images"]:
            log.warning("epoch %d: skipped %d unreadable image(s) (train %d, val %d)", epoch,
                        row["skipped_images"], row["train_skipped"], row["val_skipped"])
        improved = val is None or val.top1 > self.best["val_top1"]
        if improved:
            self.best = {"epoch": epoch, "val_top1": val.top1 if val else None,
                         "val_top5": val.top5 if val else None,
                         "val_loss": val.loss if val else None}
        self.history.append(row)
        self.epochs_done = epoch
        self._save(improved)
        if self.writes:
            write_metrics_csv(self.run_dir, self.columns, self.history)
        log.info(format_epoch(row, config.train.epochs, improved and val is not None))
        return row

    def _plan_memory(self) -> None:
        """Re-plan memory-efficient execution for this epoch's trainable set and modes."""
        if not self.exp.config.train.memory_efficient:
            return
        plan = apply_memory_plan(self.exp.model)
        if plan != self.memory_plan:
            log.info("memory-efficient execution: %s", plan.describe())
        self.memory_plan = plan

    def _diverged(self, epoch: int, err: NonFiniteLoss) -> TrainingDiverged:
        kept = (f"the last good checkpoint {self.run_dir / rundir.LAST} (epoch "
                f"{self.epochs_done}) is kept" if self.epochs_done else "no checkpoint was written")
        return TrainingDiverged(f"training diverged: loss became {err.value} in epoch {epoch} "
                                f"by step {err.step}; stopped, {kept}; lower optim.lr or set "
                                "train.grad_clip_norm")

    # --- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        exp = self.exp
        return {
            "epoch": self.epochs_done,
            "model": exp.model.state_dict(),
            "optimizer": exp.optimizer.state_dict(),
            "scheduler": exp.scheduler.state_dict(),
            "scaler": exp.scaler.state_dict() if exp.scaler is not None else None,
            "rng": capture_rng(),
            "config": config_to_dict(exp.config),
            "strategy": exp.strategy.name,
            "strategy_state": exp.strategy.state_dict(),
            "trainable": exp.trainable_names(),
            "arch": exp.built.arch,
            "classes": exp.data.classes,
            "history": self.history,
            "best": self.best,
        }

    def _save(self, improved: bool) -> None:
        # best.pt before last.pt: a kill between the two leaves last.pt at the previous epoch,
        # and resuming repeats this epoch; the reverse order could leave last.pt pointing at
        # a best epoch whose best.pt was never written.
        paths = [self.run_dir / rundir.BEST] if improved else []
        if self.writes:
            save_checkpoint(self._state(), *paths, self.run_dir / rundir.LAST)
        self.exp.dist.barrier()

    def _restore(self, state: dict[str, Any]) -> None:
        exp = self.exp
        exp.model.load_state_dict(state["model"])
        exp.strategy.load_state_dict(state["strategy_state"])
        trainable = exp.strategy.begin_epoch(int(state["epoch"]), exp.model, exp.built.adapter)
        _check_same("trainable parameters", state["trainable"], trainable)
        _check_same("optimizer parameter groups",
                    [g["param_names"] for g in state["optimizer"]["param_groups"]],
                    [g["param_names"] for g in exp.optimizer.param_groups])
        exp.optimizer.load_state_dict(state["optimizer"])
        exp.scheduler.load_state_dict(state["scheduler"])
        if exp.scaler is not None and state.get("scaler"):
            exp.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.epochs_done = int(state["epoch"])

    # --- the end -----------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        exp = self.exp
        best = load_checkpoint(self.run_dir / rundir.BEST)
        exp.model.load_state_dict(best["model"])
        start = time.perf_counter()
        test = evaluate(exp.model, exp.test_loader, exp.settings, exp.dist)
        summary = build_summary(exp, self.run_dir, self.history, self.best, test,
                                time.perf_counter() - start)
        if self.writes:
            write_summary(self.run_dir, summary)
        log.info(format_summary(summary))
        return summary


def _check_same(what: str, saved: list[Any], rebuilt: list[Any]) -> None:
    """A resumed strategy must train exactly what the checkpoint trained, or say so."""
    if saved != rebuilt:
        raise CheckpointError(f"the checkpoint's {what} differ from those the strategy sets up "
                              f"now ({len(saved)} saved, {len(rebuilt)} now; first difference: "
                              f"{_first_difference(saved, rebuilt)}); was the checkpoint written "
                              "by another ftlab version or strategy?")


def _first_difference(saved: list[Any], rebuilt: list[Any]) -> str:
    for index, (a, b) in enumerate(zip(saved, rebuilt)):
        if a != b:
            return f"entry {index}: {str(a)[:80]} vs {str(b)[:80]}"
    return f"entry {min(len(saved), len(rebuilt))} exists on one side only"
