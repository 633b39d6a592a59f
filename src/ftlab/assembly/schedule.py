"""Learning-rate schedules as a factor of the step, applied to every group's own lr.

A schedule is a pure function of the step (nanoGPT's `get_lr` idea) wrapped in `LambdaLR`,
so per-group learning rates keep their ratios, warmup composes with every shape, and the
scheduler's state is one integer that resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from ftlab.config.schema import ScheduleConfig
from ftlab.registry import Registry

# shape(config, epoch index after warmup, fractional epochs after warmup, epochs after warmup)
Shape = Callable[[ScheduleConfig, int, float, float], float]

SHAPES: Registry[Shape] = Registry("schedule.name")
SHAPES.register("constant", lambda c, epoch, progress, total: 1.0)
# Once per epoch, as torch's ExponentialLR/StepLR stepped at epoch ends.
SHAPES.register("exponential", lambda c, epoch, progress, total: c.gamma ** epoch)
SHAPES.register("step", lambda c, epoch, progress, total:
                c.step_gamma ** (epoch // c.step_size))
# Smooth over steps, reaching min_lr_factor at the last step.
SHAPES.register("cosine", lambda c, epoch, progress, total: c.min_lr_factor
                + (1 - c.min_lr_factor) * 0.5
                * (1 + math.cos(math.pi * min(progress / total, 1.0) if total > 0 else 0.0)))


def lr_factor(config: ScheduleConfig, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The factor on each group's initial lr after `step` optimizer steps."""
    shape = SHAPES.get(config.name)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    total_epochs = (epochs * steps_per_epoch - warmup) / steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            start = config.warmup_start_factor
            return start + (1.0 - start) * step / warmup
        after = step - warmup
        return shape(config, after // steps_per_epoch, after / steps_per_epoch, total_epochs)

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig,
                    steps_per_epoch: int, epochs: int) -> LambdaLR:
    """Stepped once per optimizer step."""
    return LambdaLR(optimizer, lr_factor(config, steps_per_epoch, epochs))
