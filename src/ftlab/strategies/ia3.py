"""IA3: a trained scale per channel of each adapted layer (Liu et al., NeurIPS 2022),
through peft."""

from __future__ import annotations

from typing import Any

from ftlab.config.search import FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import PeftStrategy
from ftlab.strategies.targets import TargetOptions


@register_strategy
class Ia3(PeftStrategy):
    """Each targeted layer's output channels are multiplied by a trained vector starting at
    one: the fewest parameters of the PEFT methods (one per output channel), plus the new
    head. Like BitFit it adapts only per-channel statistics, but as scales, not shifts."""

    name = "ia3"
    method = "IA3"
    summary = "IA3: a trained scale per output channel of the targeted layers, + head"
    Options = TargetOptions
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.IA3Config(target_modules=targets, feedforward_modules=[])
