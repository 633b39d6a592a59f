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
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from ftlab.data.loading import requested_images
from ftlab.training.distributed import Distributed
from ftlab.training.progress import Progress

ALONE = Distributed()


@dataclass(frozen=True)
class StepSettings:
    """How batches are moved and computed."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip_norm: float | None
    log_every: int

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        images = images.to(self.device, non_blocking=non_blocking)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=non_blocking)


@dataclass(frozen=True)
class EpochStats:
    loss: float
    top1: float
    images: int
    seconds: float
    skipped: int = 0
    """Images dropped because they could not be decoded (data.bad_images=skip)."""

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


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler,
                    scaler: torch.amp.GradScaler | None, loss_fn: Callable[..., torch.Tensor],
                    settings: StepSettings, progress: Progress,
                    penalty: Callable[[], torch.Tensor | None] | None = None,
                    dist: Distributed = ALONE) -> EpochStats:
    """Train over `loader` once; the caller has already put the model in training mode.

    `penalty` (a strategy's regulariser) joins the optimised objective; the reported loss is
    the data loss alone, so runs of different strategies compare. `model` may be a
    DistributedDataParallel wrapper; `dist` then sums the statistics over processes.
    """
    device = settings.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = step = 0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    start = time.perf_counter()
    for batch in loader:
        if batch is None:  # every image of the batch was unreadable
            continue
        step += 1
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
        if settings.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(params, settings.grad_clip_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        batch = labels.shape[0]
        loss_sum += loss.detach().double() * batch
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        seen += batch
        progress.advance(batch)
        if step % settings.log_every == 0:
            running_loss, running_seen = _check_finite(dist, step, loss_sum, seen)
            progress.report(step, running_loss / max(running_seen, 1),
                            optimizer.param_groups[0]["lr"])
    totals = _sums(dist, device, loss_sum, correct, seen, requested_images(loader))
    if not math.isfinite(totals[0]):
        raise NonFiniteLoss(step, totals[0])
    seconds = time.perf_counter() - start
    loss_total, correct_total, seen_total, requested = totals
    n = max(seen_total, 1)
    return EpochStats(loss=loss_total / n, top1=100.0 * correct_total / n, images=int(seen_total),
                      seconds=seconds, skipped=int(requested - seen_total))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, settings: StepSettings,
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
    loss_total, top1_total, top5_total, seen_total, requested = _sums(
        dist, settings.device, loss_sum, top1, top5, seen, requested_images(loader))
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


def _check_finite(dist: Distributed, step: int, loss_sum: torch.Tensor,
                  seen: int) -> tuple[float, float]:
    loss, count = _sums(dist, loss_sum.device, loss_sum, seen)
    if not math.isfinite(loss):
        raise NonFiniteLoss(step, loss)
    return loss, count
