"""Optimizers by name, built on the strategy's param groups (which carry absolute lrs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from ftlab.config.schema import OptimConfig
from ftlab.registry import Registry

OptimizerBuilder = Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]

# Each group brings its own lr and weight_decay; the keyword values here are only defaults.
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optim.name")
OPTIMIZERS.register("adam", lambda groups, c: torch.optim.Adam(
    groups, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay))
OPTIMIZERS.register("adamw", lambda groups, c: torch.optim.AdamW(
    groups, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay))
OPTIMIZERS.register("sgd", lambda groups, c: torch.optim.SGD(
    groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay))


def build_optimizer(param_groups: list[dict[str, Any]], config: OptimConfig
                    ) -> torch.optim.Optimizer:
    """The optimizer on `param_groups`. With optim.lr unset (the strategy's default, already
    in every group), the keyword default is the first group's rate: torch needs a number."""
    if config.lr is None and param_groups:
        config = replace(config, lr=param_groups[0]["lr"])
    return OPTIMIZERS.get(config.name)(param_groups, config)
