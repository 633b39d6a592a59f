"""A Conv2d with a frozen weight keeps its weight for backward, not its input."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import FrozenConv2dFunction
from ftlab.efficient.modules import FrozenConv2d
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap


def frozen_conv(module: nn.Module) -> bool:
    """A plain Conv2d (zero padding given per side) whose weight does not train."""
    return (type(module) is nn.Conv2d and not module.weight.requires_grad
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


class FrozenConv(Rule):
    name = "frozen_conv"
    summary = "a Conv2d with a frozen weight keeps no input"
    engages = (FrozenConv2dFunction,)

    def pattern(self) -> nn.Module:
        return nn.Sequential(conv(3, 4), conv(4, 4, weight=False), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if not frozen_conv(module):
            return None
        swap(module, FrozenConv2d)
        return ("frozen_convs",)


RULE = FrozenConv()
