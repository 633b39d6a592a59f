"""Dropout with p = 0 is the identity: stock autograd still draws and keeps a mask, and its
output hides the producer of its input from the layer after it."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.modules import ZeroDropout as ZeroDropoutModule
from ftlab.efficient.rules.base import SwapRule, conv, head


class ZeroDropout(SwapRule):
    name = "zero_dropout"
    summary = "dropout with p = 0 is the identity"
    swaps = (ZeroDropoutModule,)
    target = ZeroDropoutModule

    def pattern(self) -> nn.Module:
        return nn.Sequential(conv(3, 4), nn.Dropout(0.0), conv(4, 4), *head(4))

    def matches(self, module: nn.Module) -> bool:
        return type(module) is nn.Dropout and module.p == 0


RULE = ZeroDropout()
