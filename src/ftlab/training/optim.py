"""Optimizers by name, built on the strategy's param groups (which carry absolute lrs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ftlab.config.schema import OptimConfig
from ftlab.errors import ConfigError

OptimizerBuilder = Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]

# Each group brings its own lr and weight_decay; the keyword values here are only defaults.
_OPTIMIZERS: dict[str, OptimizerBuilder] = {
    "adam": lambda groups, c: torch.optim.Adam(groups, lr=c.lr, betas=tuple(c.betas), eps=c.eps,
                                               weight_decay=c.weight_decay),
    "adamw": lambda groups, c: torch.optim.AdamW(groups, lr=c.lr, betas=tuple(c.betas),
                                                 eps=c.eps, weight_decay=c.weight_decay),
    "sgd": lambda groups, c: torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum,
                                             nesterov=c.nesterov, weight_decay=c.weight_decay),
}


def optimizer_names() -> list[str]:
    return sorted(_OPTIMIZERS)


def check_optimizer_name(name: str) -> None:
    if name not in _OPTIMIZERS:
        raise ConfigError(f"optim.name={name!r} is unknown; choose one of: "
                          + ", ".join(optimizer_names()))


def build_optimizer(param_groups: list[dict[str, Any]], config: OptimConfig
                    ) -> torch.optim.Optimizer:
    check_optimizer_name(config.name)
    return _OPTIMIZERS[config.name](param_groups, config)
