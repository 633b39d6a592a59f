"""A Linear with a frozen weight keeps its weight for backward, not its input."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import FrozenLinearFunction
from ftlab.efficient.modules import FrozenLinear as FrozenLinearModule
from ftlab.efficient.rules.base import PATTERN_SIZE, SwapRule, trainable


def frozen_linear(module: nn.Module) -> bool:
    return type(module) is nn.Linear and not module.weight.requires_grad


class FrozenLinear(SwapRule):
    name = "frozen_linear"
    summary = "a Linear with a frozen weight keeps no input"
    engages = (FrozenLinearFunction,)
    target, counted = FrozenLinearModule, ("frozen_linears",)

    def pattern(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * PATTERN_SIZE ** 2, 8),
                             trainable(nn.Linear(8, 8), weight=False), nn.Linear(8, 3))

    def matches(self, module: nn.Module) -> bool:
        return frozen_linear(module)


RULE = FrozenLinear()
