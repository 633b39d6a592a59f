"""Optimizers and learning-rate schedules: registries of named entries with their own options
(`ftlab.optimizers` and `ftlab.schedules` entry points add more)."""

from ftlab.optimization.optimizers import (
    OPTIMIZERS,
    AdamOptions,
    Optimizer,
    SGDOptions,
    optimizer_options,
    register_optimizer,
    resolved_optim,
)
from ftlab.optimization.schedules import (
    SCHEDULES,
    ConstantOptions,
    CosineOptions,
    ExponentialOptions,
    Schedule,
    StepOptions,
    describe_schedule,
    register_schedule,
    resolved_schedule,
    schedule_options,
)

__all__ = ["OPTIMIZERS", "SCHEDULES", "AdamOptions", "ConstantOptions", "CosineOptions",
           "ExponentialOptions", "Optimizer", "SGDOptions", "Schedule", "StepOptions",
           "describe_schedule", "optimizer_options", "register_optimizer",
           "register_schedule", "resolved_optim", "resolved_schedule", "schedule_options"]
