"""The optimizer of a run, built on the strategy's param groups (which carry absolute lrs)."""

from __future__ import annotations

from typing import Any

import torch

from ftlab.config.schema import OptimConfig
from ftlab.optimization import OPTIMIZERS, optimizer_options


def build_optimizer(param_groups: list[dict[str, Any]], config: OptimConfig
                    ) -> torch.optim.Optimizer:
    """The optimizer on `param_groups`. Each group brings its own lr and weight_decay; the
    keyword values are only defaults. With optim.lr unset (the strategy's default, already
    in every group), the keyword default is the first group's rate: torch needs a number."""
    lr = config.lr
    if lr is None and param_groups:
        lr = param_groups[0]["lr"]
    entry = OPTIMIZERS.get(config.name)
    return entry.build(param_groups, lr, config.weight_decay, optimizer_options(config))
