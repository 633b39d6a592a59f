"""A partial layer (sparse update) keeps its input once and computes the weight gradient
of its updated output channels only."""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.partial import (
    EfficientPartialConv2d,
    EfficientPartialLinear,
    PartialConv2dFunction,
    PartialLinearFunction,
)
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap
from ftlab.models.partial import DELTA, PartialConv2d, PartialLinear, make_partial


class PartialUpdate(Rule):
    name = "partial_update"
    summary = "a sparse-update layer computes its updated channels' weight gradient only"
    engages = (PartialConv2dFunction, PartialLinearFunction)
    swaps = (EfficientPartialConv2d, EfficientPartialLinear)

    def pattern(self) -> nn.Module:
        layer = conv(4, 6, weight=False)
        make_partial(layer, 0.5)
        linear = nn.Linear(6, 3)  # the head: 3 classes, as every pattern ends
        linear.weight.requires_grad_(False)
        make_partial(linear, 0.5)
        with torch.no_grad():  # a zero update would hide a wrong gradient of what follows
            getattr(layer, DELTA).normal_(0, 0.1)
            getattr(linear, DELTA).normal_(0, 0.1)
        return nn.Sequential(conv(3, 4), layer, *head(6)[:2], linear)

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        delta = module._parameters.get(DELTA)
        if type(module) not in (PartialConv2d, PartialLinear) or delta is None \
                or not delta.requires_grad:
            return None
        swap(module, EfficientPartialConv2d if type(module) is PartialConv2d
             else EfficientPartialLinear)
        return ()


RULE = PartialUpdate()
