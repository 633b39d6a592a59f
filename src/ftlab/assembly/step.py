"""What one optimisation step is made of, as the experiment builds it for the loop."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StepSettings:
    """How batches are moved and computed."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip_norm: float | None
    log_every: int
    skip_nonfinite: bool = False
    """Skip steps whose gradient norm is NaN/inf instead of stopping the run on a bad loss."""

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
class TrainStep:
    """What one optimisation step uses. `model` may be a DistributedDataParallel or compiled
    wrapper; `penalty` is the strategy's regulariser (joins the objective, not the reported
    loss, so runs of different strategies compare)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    loss_fn: Callable[..., torch.Tensor]
    settings: StepSettings
    penalty: Callable[[], torch.Tensor | None] | None = None

    def params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]
