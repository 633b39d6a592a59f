"""The learning-rate scheduler of a run: its schedule's shape after warmup, as a factor of
the step on every group's own lr, in `LambdaLR` (state: one integer that resumes exactly)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from ftlab.config.schema import ScheduleConfig
from ftlab.optimization import SCHEDULES, schedule_options


def lr_factor(config: ScheduleConfig, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The factor on each group's initial lr after `step` optimizer steps."""
    shape, options = SCHEDULES.get(config.name).shape, schedule_options(config)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    total_epochs = (epochs * steps_per_epoch - warmup) / steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            start = config.warmup_start_factor
            return start + (1.0 - start) * step / warmup
        after = step - warmup
        return shape(options, after // steps_per_epoch, after / steps_per_epoch, total_epochs)

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig,
                    steps_per_epoch: int, epochs: int) -> LambdaLR:
    """Stepped once per optimizer step."""
    return LambdaLR(optimizer, lr_factor(config, steps_per_epoch, epochs))
