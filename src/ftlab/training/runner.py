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
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ftlab.config import config_to_dict, config_to_yaml
from ftlab.data import epoch_seed
from ftlab.efficient import MemoryPlan, apply_memory_plan
from ftlab.errors import CheckpointError, Stopped, TrainingDiverged
from ftlab.faults import failpoint
from ftlab.fileio import atomic_write_text
from ftlab.runfiles import Checkpoint, RunSummary
from ftlab.training import rundir
from ftlab.assembly.experiment import Experiment
from ftlab.training.checkpoint import capture_rng, read_checkpoint, restore_rng, save_checkpoint
from ftlab.training.cursor import EpochCursor
from ftlab.training.diagnostics import check_features, pooled_features, still_loss_warning
from ftlab.runtime.interrupt import StopFlag
from ftlab.training.loop import (
    EpochStats,
    EpochTally,
    EvalStats,
    NonFiniteLoss,
    evaluate,
    train_one_epoch,
)
from ftlab.training.progress import Progress
from ftlab.training.records import TensorBoardLog, metric_columns, write_metrics_csv, write_summary
from ftlab.training.summary import (
    build_summary,
    format_epoch,
    format_summary,
    tested_checkpoint,
)

log = logging.getLogger("ftlab")

EpochHook = Callable[[dict[str, Any]], bool]
"""Called on rank 0 after each epoch's checkpoint with that epoch's metrics row; True ends
the run there (a tuning trial pruned by its search). The hook sees every epoch of the run,
those of an earlier process included, so a resumed trial reports its whole history."""


class Trainer:
    """Runs the epochs of one experiment in one run folder."""

    def __init__(self, experiment: Experiment, run_dir: Path,
                 checkpoint: Checkpoint | None = None, stop: StopFlag | None = None,
                 on_epoch: EpochHook | None = None) -> None:
        self.exp = experiment
        self.run_dir = run_dir
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "val_top1": -1.0}
        self.epochs_done = 0
        self.memory_plan: MemoryPlan | None = None
        self.writes = experiment.dist.is_main
        self.cursor: EpochCursor | None = None
        """A stopped epoch to continue: its number, tally, random state and learning rates."""
        self.stop = stop if stop is not None else StopFlag()
        """Set by SIGTERM/SIGINT (the caller installs its handlers around the whole run)."""
        self.on_epoch = on_epoch
        self.diagnostics: dict[str, Any] = {"warnings": []}
        """The feature check and the warnings of `diagnostics`, kept for summary.json."""
        if checkpoint is not None:
            self._restore(checkpoint)
        self.columns = metric_columns(experiment.group_names)

    def fit(self) -> RunSummary:
        """Train the remaining epochs, evaluate the best checkpoint on test, write the summary.

        SIGTERM/SIGINT stop it cleanly: after the current step a checkpoint of that point is
        written and `Stopped` is raised (exit code 128 + signal); `--resume` continues.
        """
        config = self.exp.config
        if self.writes:
            atomic_write_text(self.run_dir / rundir.CONFIG, config_to_yaml(config))
            write_metrics_csv(self.run_dir, self.columns, self.history)
        board = TensorBoardLog(self.run_dir, self.epochs_done + 1,
                               config.train.tensorboard and self.writes)
        if self.epochs_done == 0 and self.cursor is None and self.writes:
            self._check_features()
        try:
            if self.exp.dist.any(self.stop.requested):  # during setup: nothing to save yet
                raise self._stopped("before training", saved=False)
            if self._ends_early(self.history):  # a resumed run its hook had already ended
                return self._finish(pruned=True)
            for epoch in range(self.epochs_done + 1, config.train.epochs + 1):
                row = self._run_epoch(epoch)
                board.log(row)
                failpoint("epoch_end")
                if self._ends_early([row]) and epoch < config.train.epochs:
                    return self._finish(pruned=True)
                if self.exp.dist.any(self.stop.requested) and epoch < config.train.epochs:
                    raise self._stopped(f"after epoch {epoch}")
        finally:
            board.close()
        return self._finish()

    def _ends_early(self, rows: list[dict[str, Any]]) -> bool:
        """Whether the epoch hook ends the run after `rows` (rank 0 decides for all)."""
        if self.on_epoch is None:
            return False
        verdict = False
        if self.writes:
            for row in rows:
                verdict = bool(self.on_epoch(row)) or verdict
        return self.exp.dist.any(verdict)

    # --- one epoch ---------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        exp, config = self.exp, self.exp.config
        start = time.perf_counter()
        cursor = self.cursor if self.cursor and self.cursor.epoch == epoch else None
        lrs = cursor.lrs if cursor else {f"lr/{g['name']}": g["lr"]
                                         for g in exp.optimizer.param_groups}
        model = self._begin_epoch(epoch, cursor)
        if cursor:  # the random stream exactly where the stopped run left it
            restore_rng(cursor.rng)
        stats = self._train(epoch, model, cursor.tally if cursor else None)
        self._check_weights(epoch)
        if stats.stopped is not None:
            self._save_stopped(epoch, stats.stopped, lrs)
        exp.dist.broadcast_buffers(exp.model)
        val = (evaluate(exp.model, exp.val_loader, exp.settings, exp.dist)
               if exp.val_loader else None)
        row = _epoch_row(epoch, lrs, stats, val, time.perf_counter() - start)
        still = still_loss_warning(exp.data.num_classes, stats.loss,
                                   val.loss if val else None) if epoch == 1 else None
        self._keep_warning(still)  # before the checkpoint, which keeps the diagnostics
        improved = val is None or val.top1 > self.best["val_top1"]
        if improved:
            self.best = {"epoch": epoch, "val_top1": val.top1 if val else None,
                         "val_top5": val.top5 if val else None,
                         "val_loss": val.loss if val else None}
        self.history.append(row)
        self.epochs_done = epoch
        self.cursor = None
        self._save(improved)
        if self.writes:
            write_metrics_csv(self.run_dir, self.columns, self.history)
        log.info(format_epoch(row, config.train.epochs, improved and val is not None))
        self._print_warning(still)
        return row

    def _begin_epoch(self, epoch: int, cursor: EpochCursor | None) -> torch.nn.Module:
        """Seed, position the batches (past a stopped run's), let the strategy set
        trainable parameters and modes, plan memory; returns the model to train."""
        exp = self.exp
        seed = epoch_seed(exp.config.train.seed, epoch, stream=2)
        torch.manual_seed(seed)
        random.seed(seed)
        exp.train_loader.set_position(epoch, cursor.batches_done if cursor else 0)
        exp.strategy.begin_epoch(epoch, exp.model, exp.built.adapter)
        exp.strategy.set_train_mode(exp.model)
        self._plan_memory()
        return exp.wrap_for_training()

    def _train(self, epoch: int, model: torch.nn.Module, tally: EpochTally | None) -> EpochStats:
        exp, config = self.exp, self.exp.config
        # Rank 0 shows its own share of the images, the others stay quiet.
        progress = Progress(config.train.progress if self.writes else "none",
                            len(exp.train_loader) * exp.train_loader.batch_size,
                            f"epoch {epoch}/{config.train.epochs}")
        try:
            return train_one_epoch(exp.train_step(model), exp.train_loader, progress,
                                   dist=exp.dist, stop=self.stop, start=tally)
        except NonFiniteLoss as err:
            raise self._diverged(epoch, f"loss became {err.value} by step {err.step}") from None
        finally:
            progress.close()

    def _check_features(self, images: int = 32) -> None:
        """Before the first epoch: are the pretrained backbone's pooled features informative
        on this data at this resolution? (Seeded reads: no random state is consumed.)"""
        exp = self.exp
        if exp.built.weights.kind == "none" or not exp.strategy.pretrained:
            return
        train = exp.data.train
        picks = sorted({round(i * (len(train) - 1) / max(images - 1, 1)) for i in range(images)})
        samples = [sample for sample in (train[(i, exp.config.train.seed)] for i in picks)
                   if sample is not None]
        if len(samples) < 2:
            return
        features = pooled_features(exp.model, exp.built.adapter,
                                   torch.stack([image for image, _ in samples]))
        check = check_features(features, exp.data.input.resolution,
                               exp.built.weights.preprocessing.crop_size)
        self.diagnostics["feature_check"] = check.as_dict()
        self._keep_warning(check.warning())
        self._print_warning(check.warning())

    def _keep_warning(self, warning: str | None) -> None:
        if warning is not None and self.writes:
            self.diagnostics["warnings"].append(warning)

    def _print_warning(self, warning: str | None) -> None:
        if warning is not None and self.writes:
            log.warning("warning: %s", warning)

    def _check_weights(self, epoch: int) -> None:
        """A NaN/inf gradient that left the loss finite still must not reach a checkpoint."""
        params = [p.detach() for p in self.exp.model.parameters() if p.requires_grad]
        if params and not torch.stack([p.isfinite().all() for p in params]).all().item():
            raise self._diverged(epoch, "weights became NaN or infinite")

    def _plan_memory(self) -> None:
        """Re-plan memory-efficient execution for this epoch's trainable set and modes."""
        if not self.exp.config.train.memory_efficient:
            return
        plan = apply_memory_plan(self.exp.model)
        if plan != self.memory_plan:
            log.info("memory-efficient execution: %s", plan.describe())
        self.memory_plan = plan

    def _diverged(self, epoch: int, what: str) -> TrainingDiverged:
        kept = (f"the last good checkpoint {self.run_dir / rundir.LAST} (epoch "
                f"{self.epochs_done}) is kept" if self.epochs_done else "no checkpoint was written")
        return TrainingDiverged(f"training diverged: {what} in epoch {epoch}; stopped, {kept}; "
                                "lower optim.lr, set train.grad_clip_norm, or set "
                                "train.nonfinite=skip to drop such steps")

    def _stopped(self, where: str, saved: bool = True) -> Stopped:
        signum = self.stop.signum or signal.SIGTERM  # another rank may have got the signal
        state = (f"checkpoint {self.run_dir / rundir.LAST} saved" if saved else
                 "nothing to save yet")
        return Stopped(f"{signal.Signals(signum).name} received: stopped {where}, {state}; "
                       f"continue with: ftlab train --resume {self.run_dir}", signum)

    def _save_stopped(self, epoch: int, tally: EpochTally, lrs: dict[str, float]) -> None:
        """Checkpoint the middle of epoch `epoch` (rng first: nothing may draw before it)."""
        self.cursor = EpochCursor(epoch=epoch, tally=tally, rng=capture_rng(), lrs=lrs)
        self._save(improved=False)
        raise self._stopped(f"in epoch {epoch} after step {tally.steps}")

    # --- checkpoints -------------------------------------------------------------------
    def _checkpoint(self) -> Checkpoint:
        exp = self.exp
        return Checkpoint(
            epoch=self.epochs_done,
            model=exp.model.state_dict(),
            optimizer=exp.optimizer.state_dict(),
            scheduler=exp.scheduler.state_dict(),
            scaler=exp.scaler.state_dict() if exp.scaler is not None else None,
            rng=capture_rng(),
            config=config_to_dict(exp.config),
            strategy=exp.strategy.name,
            strategy_state=exp.strategy.state_dict(),
            trainable=exp.trainable_names(),
            arch=exp.built.arch,
            classes=exp.data.classes,
            history=self.history,
            best=self.best,
            partial=self.cursor.to_partial() if self.cursor else None,
            diagnostics=self.diagnostics,
        )

    def _save(self, improved: bool) -> None:
        # best.pt before last.pt: a kill between the two leaves last.pt at the previous epoch,
        # and resuming repeats this epoch; the reverse order could leave last.pt pointing at
        # a best epoch whose best.pt was never written.
        paths = [self.run_dir / rundir.BEST] if improved else []
        if self.writes:
            save_checkpoint(self._checkpoint(), *paths, self.run_dir / rundir.LAST,
                            previous=self.run_dir / rundir.PREVIOUS)
        self.exp.dist.barrier()

    def _restore(self, checkpoint: Checkpoint) -> None:
        exp = self.exp
        exp.model.load_state_dict(checkpoint.model)
        exp.strategy.load_state_dict(checkpoint.strategy_state)
        self.cursor = EpochCursor.from_partial(checkpoint.partial)
        epoch = self.cursor.epoch if self.cursor else checkpoint.epoch
        trainable = exp.strategy.begin_epoch(epoch, exp.model, exp.built.adapter)
        _check_same("trainable parameters", checkpoint.trainable, trainable)
        _check_same("optimizer parameter groups",
                    [g["param_names"] for g in checkpoint.optimizer["param_groups"]],
                    [g["param_names"] for g in exp.optimizer.param_groups])
        exp.optimizer.load_state_dict(checkpoint.optimizer)
        exp.scheduler.load_state_dict(checkpoint.scheduler)
        if exp.scaler is not None and checkpoint.scaler:
            exp.scaler.load_state_dict(checkpoint.scaler)
        restore_rng(checkpoint.rng)
        self.history = list(checkpoint.history)
        self.best = dict(checkpoint.best)
        self.epochs_done = checkpoint.epoch
        self.diagnostics = checkpoint.diagnostics or {"warnings": []}

    # --- the end -----------------------------------------------------------------------
    def _finish(self, pruned: bool = False) -> RunSummary:
        """The summary; the test numbers of `tested_checkpoint` unless the run does not
        evaluate on test (`train.evaluate_test=false`). `pruned`: the epoch hook ended the run."""
        exp = self.exp
        test, seconds = None, 0.0
        if exp.test_loader is not None:
            tested = read_checkpoint(self.run_dir / tested_checkpoint(exp))
            exp.model.load_state_dict(tested.model)
            start = time.perf_counter()
            test = evaluate(exp.model, exp.test_loader, exp.settings, exp.dist)
            seconds = time.perf_counter() - start
        summary = build_summary(exp, self.run_dir, self.history, self.best, test, seconds,
                                self.diagnostics, status="pruned" if pruned else "complete")
        if self.writes:
            write_summary(self.run_dir, summary)
        log.info(format_summary(summary))
        return summary


def _epoch_row(epoch: int, lrs: dict[str, float], stats: EpochStats, val: EvalStats | None,
               seconds: float) -> dict[str, Any]:
    """One metrics.csv row (plus the split of skipped images, for the log and summary)."""
    row: dict[str, Any] = {
        "epoch": epoch, **lrs, "train_loss": stats.loss, "train_top1": stats.top1,
        "val_loss": val.loss if val else None, "val_top1": val.top1 if val else None,
        "val_top5": val.top5 if val else None,
        "epoch_time_s": seconds, "train_time_s": stats.seconds,
        "images_per_s": stats.images_per_s,
        "skipped_images": stats.skipped + (val.skipped if val else 0),
        "train_skipped": stats.skipped, "val_skipped": val.skipped if val else 0,
        "skipped_steps": stats.skipped_steps,
    }
    if stats.skipped_steps:
        log.warning("epoch %d: skipped %d step(s) whose gradients were not finite", epoch,
                    stats.skipped_steps)
    if row["skipped_images"]:
        log.warning("epoch %d: skipped %d unreadable image(s) (train %d, val %d)", epoch,
                    row["skipped_images"], row["train_skipped"], row["val_skipped"])
    return row


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
