"""Optimizers by name, each with its own options, built on the strategy's param groups.

Param groups carry absolute learning rates and weight decays (the strategy sets them), so an
optimizer's builder receives the groups, the keyword defaults torch needs (`lr`,
`weight_decay`) and its options object. Another package adds one through the entry-point
group `ftlab.optimizers` (docs/plugins.md): an `Optimizer` value, or a module that calls
`register_optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ftlab.config.loading import register_option_check
from ftlab.config.options import option_values, parse_choice_options
from ftlab.config.schema import OptimConfig, check_length, check_number, fail
from ftlab.registry import Registry

Builder = Callable[[list[dict[str, Any]], float, float, Any], torch.optim.Optimizer]
"""(param groups, default lr, default weight decay, options) -> the optimizer."""


@dataclass(frozen=True)
class Optimizer:
    """One registered optimizer."""

    options: type
    """Its options dataclass (fields documented, checked in `__post_init__`)."""
    build: Builder
    states: Callable[[Any], int] = lambda options: 0
    """Tensors of state it keeps per trained parameter (Adam: 2), for memory estimates."""


OPTIMIZERS: Registry[Optimizer] = Registry("optim.name", plugin_group="ftlab.optimizers")

COMMON = ("name", "lr", "weight_decay", "exclude_norm_bias_from_decay")
"""The optim section's own keys; every other key is an option of the chosen optimizer."""


def register_optimizer(name: str, options: type, states: Callable[[Any], int] | None = None
                       ) -> Callable[[Builder], Builder]:
    """Decorator: register `build` as optimizer `name` with its options dataclass."""
    def register(build: Builder) -> Builder:
        OPTIMIZERS.register(name, Optimizer(options, build, states or (lambda o: 0)))
        return build
    return register


@dataclass(frozen=True)
class AdamOptions:
    """Adam / AdamW."""

    betas: tuple[float, ...] = (0.9, 0.999)
    """Moment coefficients."""
    eps: float = 1e-8
    """Denominator epsilon."""

    def __post_init__(self) -> None:
        check_length("optim.betas", self.betas, 2)
        for beta in self.betas:
            check_number("optim.betas", beta, low=0.0, high=1.0, high_open=True)
        check_number("optim.eps", self.eps, low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class SGDOptions:
    """SGD."""

    momentum: float = 0.9
    """Momentum."""
    nesterov: bool = False
    """Nesterov momentum."""

    def __post_init__(self) -> None:
        check_number("optim.momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        if self.nesterov and self.momentum == 0:
            fail("optim.nesterov", True, "only with optim.momentum > 0")


@register_optimizer("adam", AdamOptions, states=lambda o: 2)
def _adam(groups: list[dict[str, Any]], lr: float, weight_decay: float,
          o: AdamOptions) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=lr, betas=tuple(o.betas), eps=o.eps,
                            weight_decay=weight_decay)


@register_optimizer("adamw", AdamOptions, states=lambda o: 2)
def _adamw(groups: list[dict[str, Any]], lr: float, weight_decay: float,
           o: AdamOptions) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(o.betas), eps=o.eps,
                             weight_decay=weight_decay)


@register_optimizer("sgd", SGDOptions, states=lambda o: int(o.momentum > 0))
def _sgd(groups: list[dict[str, Any]], lr: float, weight_decay: float,
         o: SGDOptions) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=o.momentum, nesterov=o.nesterov,
                           weight_decay=weight_decay)


LEGACY = {"momentum": SGDOptions, "nesterov": SGDOptions, "betas": AdamOptions,
          "eps": AdamOptions}
"""Keys every optim section had before optimizers had their own options (run folders of then
list all four), with the options that declare them: checked as before, and ignored by an
optimizer that does not declare them, as they were."""


def optimizer_options(config: OptimConfig) -> Any:
    """The chosen optimizer's options object, checked (one line naming a wrong key)."""
    schema = OPTIMIZERS.get(config.name).options
    return parse_choice_options("optim", config.name, schema, config.options, COMMON, LEGACY)


def resolved_optim(config: OptimConfig) -> OptimConfig:
    """`config` with its optimizer's options written out in full (defaults included)."""
    from dataclasses import replace

    return replace(config, options=option_values(optimizer_options(config)))



def _check_when_loaded(config: Any) -> None:
    """At load time, the options of a known optim.name (an unknown name is reported by
    `assembly.check_config`, with the choices)."""
    if config.name in OPTIMIZERS:
        optimizer_options(config)


register_option_check("optim", _check_when_loaded)
