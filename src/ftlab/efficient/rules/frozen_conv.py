"""A Conv2d with a frozen weight keeps its weight for backward, not its input."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import FrozenConv2dFunction
from ftlab.efficient.modules import FrozenConv2d
from ftlab.efficient.rules.base import SwapRule, conv, head


def frozen_conv(module: nn.Module) -> bool:
    """A plain Conv2d (zero padding given per side) whose weight does not train."""
    return (type(module) is nn.Conv2d and not module.weight.requires_grad
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


class FrozenConv(SwapRule):
    name = "frozen_conv"
    summary = "a Conv2d with a frozen weight keeps no input"
    engages = (FrozenConv2dFunction,)
    target, counted = FrozenConv2d, ("frozen_convs",)

    def pattern(self) -> nn.Module:
        return nn.Sequential(conv(3, 4), conv(4, 4, weight=False), *head(4))

    def matches(self, module: nn.Module) -> bool:
        return frozen_conv(module)


RULE = FrozenConv()
