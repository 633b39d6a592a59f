"""One training epoch and one evaluation pass.

The hot loop keeps its running sums on the device and reads them back only every
`log_every` steps: a `.item()` per step would stall a GPU on every batch. The same periodic
read checks that the loss is finite, so a diverged run stops before it writes a checkpoint.
In a data-parallel run the sums are added over all processes before they are read, so every
process reports the same numbers and all stop together when the loss diverges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ftlab.data import BatchSource
from ftlab.faults import failpoint
from ftlab.assembly.step import StepSettings, TrainStep
from ftlab.runtime import Distributed
from ftlab.training.progress import Progress

ALONE = Distributed()


@dataclass(frozen=True)
class EpochTally:
    """How far an epoch got: batches consumed and running sums over all processes.

    Saved in the checkpoint when a run is stopped mid-epoch, and handed back to
    `train_one_epoch` on resume, so the resumed epoch reports what an uninterrupted one would.
    """

    batches: int = 0
    steps: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    requested: int = 0
    skipped_steps: int = 0
    dropped: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class EpochStats:
    loss: float
    top1: float
    images: int
    seconds: float
    skipped: int = 0
    """Images dropped because they could not be decoded (data.bad_images=skip)."""
    skipped_steps: int = 0
    """Steps whose gradients were not finite and were not applied (train.nonfinite=skip)."""
    stopped: EpochTally | None = None
    """Set when a stop signal ended the epoch early: where it stopped."""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class EvalStats:
    loss: float
    top1: float
    top5: float
    images: int
    skipped: int = 0


class NonFiniteLoss(RuntimeError):
    """Raised inside the loop; the runner turns it into `TrainingDiverged`."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss is {value} at step {step}")
        self.step = step
        self.value = value


class _Sums:
    """This process's running sums, on the device so that adding to them never syncs."""

    def __init__(self, device: torch.device, start: EpochTally) -> None:
        self.loss = torch.full((), start.loss_sum, device=device, dtype=torch.float64)
        self.correct = torch.full((), start.correct, device=device, dtype=torch.int64)
        self.seen, self.skipped_steps = start.seen, start.skipped_steps
        self.dropped = start.dropped
        """Images of skipped steps: delivered, so not counted as unreadable, but not scored."""


def train_one_epoch(step: TrainStep, batches: BatchSource, progress: Progress, *,
                    dist: Distributed = ALONE, stop: Callable[[], bool] = lambda: False,
                    start: EpochTally | None = None) -> EpochStats:
    """Train over what is left of `batches` once; the caller has already positioned them and
    put the model in training mode.

    With several processes (`dist`) the statistics are summed over them. `stop` is polled
    after every step (every `log_every` steps, agreed over processes, when distributed);
    `start` is the tally of an epoch stopped earlier, whose batches `batches` now skips.
    """
    settings = step.settings
    start = start or EpochTally()
    sums = _Sums(settings.device, start if dist.is_main else EpochTally())
    params = step.params()
    steps, done_batches, remaining = start.steps, start.batches, len(batches)
    requested = batches.requested_images()
    began = time.perf_counter()
    for batch in batches:
        done_batches, remaining = done_batches + 1, remaining - 1
        if batch is None:  # every image of the batch was unreadable
            continue
        steps += 1
        _step(step, batch, params, sums)
        step.scheduler.step()
        failpoint("train_step")
        progress.advance(int(batch[1].shape[0]))
        stopping = bool(stop()) and remaining > 0 and not dist.enabled
        if steps % settings.log_every == 0:
            loss, seen, flags = _check_finite(dist, steps, sums, float(bool(stop())))
            progress.report(steps, loss / max(seen, 1), step.optimizer.param_groups[0]["lr"])
            stopping = stopping or (flags > 0 and remaining > 0)
        if stopping:
            done = (done_batches - start.batches) * batches.batch_size + (
                start.requested if dist.is_main else 0)
            return _stopped(dist, settings, sums, steps, done_batches, done,
                            start.seconds + time.perf_counter() - began)
    totals = _sums(dist, settings.device, sums.loss, sums.correct, sums.seen,
                   requested, sums.skipped_steps, sums.dropped)
    if not math.isfinite(totals[0]):
        raise NonFiniteLoss(steps, totals[0])
    loss_total, correct_total, seen_total, requested, skipped_steps, dropped = totals
    n = max(seen_total, 1)
    return EpochStats(loss=loss_total / n, top1=100.0 * correct_total / n, images=int(seen_total),
                      seconds=start.seconds + time.perf_counter() - began,
                      skipped=int(start.requested + requested - seen_total - dropped),
                      skipped_steps=int(skipped_steps))


def _step(step: TrainStep, batch: tuple[torch.Tensor, torch.Tensor],
          params: list[torch.Tensor], sums: _Sums) -> None:
    """Forward, backward and update on one batch; adds to `sums` without a host sync
    (unless `skip_nonfinite`, which must read the gradient norm to decide)."""
    model, optimizer, scaler, settings = step.model, step.optimizer, step.scaler, step.settings
    loss_fn, penalty = step.loss_fn, step.penalty
    images, labels = settings.to_device(*batch)
    with settings.autocast():
        logits = model(images)
        loss = loss_fn(logits, labels)
    extra = penalty() if penalty is not None else None
    objective = loss if extra is None else loss + extra
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(objective).backward()
        scaler.unscale_(optimizer)
    else:
        objective.backward()
    if settings.skip_nonfinite:
        # Gradients are already averaged over processes, so every process decides alike.
        norm = nn.utils.clip_grad_norm_(params, settings.grad_clip_norm or math.inf)
        if not torch.isfinite(norm).item():
            optimizer.zero_grad(set_to_none=True)
            sums.skipped_steps += 1
            sums.dropped += labels.shape[0]
            if scaler is not None:
                scaler.update()
            return
    elif settings.grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(params, settings.grad_clip_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    count = labels.shape[0]
    sums.loss += loss.detach().double() * count
    sums.correct += (logits.detach().argmax(dim=1) == labels).sum()
    sums.seen += count


def _stopped(dist: Distributed, settings: StepSettings, sums: _Sums, steps: int, batches: int,
             requested: int, seconds: float) -> EpochStats:
    """The epoch so far, summed over processes, for the checkpoint of a stopped run."""
    loss, correct, seen, requested_total, skipped_steps, dropped = _sums(
        dist, settings.device, sums.loss, sums.correct, sums.seen, requested,
        sums.skipped_steps, sums.dropped)
    tally = EpochTally(batches=batches, steps=steps, loss_sum=loss, correct=int(correct),
                       seen=int(seen), requested=int(requested_total),
                       skipped_steps=int(skipped_steps), dropped=int(dropped), seconds=seconds)
    n = max(seen, 1)
    return EpochStats(loss=loss / n, top1=100.0 * correct / n, images=int(seen),
                      seconds=seconds, stopped=tally)


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchSource, settings: StepSettings,
             dist: Distributed = ALONE) -> EvalStats:
    """Mean cross-entropy, top-1 and top-5 accuracy (%) over `loader`.

    With several processes each evaluates its shard and the sums are added, so all report
    the figures of the whole split. Leaves the model in eval mode: the strategy decides the
    next training mode.
    """
    model.eval()
    loss_sum = torch.zeros((), device=settings.device, dtype=torch.float64)
    top1 = torch.zeros((), device=settings.device, dtype=torch.int64)
    top5 = torch.zeros((), device=settings.device, dtype=torch.int64)
    seen = 0
    for batch in loader:
        if batch is None:
            continue
        images, labels = settings.to_device(*batch)
        with settings.autocast():
            logits = model(images)
        loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").double()
        k = min(5, logits.shape[1])
        best = logits.topk(k, dim=1).indices
        hits = best == labels[:, None]
        top1 += hits[:, 0].sum()
        top5 += hits.any(dim=1).sum()
        seen += labels.shape[0]
        failpoint("eval_batch")
    loss_total, top1_total, top5_total, seen_total, requested = _sums(
        dist, settings.device, loss_sum, top1, top5, seen, loader.requested_images())
    n = max(seen_total, 1)
    return EvalStats(loss=loss_total / n, top1=100.0 * top1_total / n,
                     top5=100.0 * top5_total / n, images=int(seen_total),
                     skipped=int(requested - seen_total))


def _sums(dist: Distributed, device: torch.device, *values: torch.Tensor | int) -> list[float]:
    """Add `values` over all processes with one collective and read them in one transfer."""
    packed = torch.stack([torch.as_tensor(v, device=device, dtype=torch.float64)
                          for v in values])
    dist.all_reduce_sum(packed)
    return packed.tolist()


def _check_finite(dist: Distributed, step: int, sums: _Sums,
                  stop: float) -> tuple[float, float, float]:
    """Running loss and count over all processes (raising if the loss is not finite), and
    how many processes were asked to stop."""
    loss, count, stops = _sums(dist, sums.loss.device, sums.loss, sums.seen, stop)
    if not math.isfinite(loss):
        raise NonFiniteLoss(step, loss)
    return loss, count, stops
