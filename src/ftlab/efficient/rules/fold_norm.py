"""An eval-mode BatchNorm after a frozen conv is folded into it.

The norm must be the conv's only reader, normalise with its running statistics and have a
frozen (or no) γ; timm's BatchNormAct2d qualifies too, its dropout and activation then run
on the folded output. The pair becomes one convolution (weight x γ/σ, bias β - μγ/σ), so
β keeps its exact gradient and the norm keeps nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.functions import FrozenConv2dFunction
from ftlab.efficient.int8 import Int8Conv2d
from ftlab.efficient.modules import FOLDED_NORM, FoldedBatchNorm2d, FoldedNormAct2d, FrozenConv2d
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap, trainable
from ftlab.efficient.rules.frozen_conv import frozen_conv
from ftlab.efficient.wiring import norm_act


def foldable(norm: nn.Module) -> bool:
    return ((type(norm) is nn.BatchNorm2d or norm_act(norm)) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None
            and (norm.weight is None or not norm.weight.requires_grad))


class FoldNorm(Rule):
    name = "fold_norm"
    summary = "an eval-mode BatchNorm after a frozen conv is folded into it"
    engages = (FrozenConv2dFunction,)
    swaps = (FoldedBatchNorm2d,)
    requires = ("frozen_conv",)
    keeps = (FOLDED_NORM,)

    def pattern(self) -> nn.Module:
        norm = trainable(nn.BatchNorm2d(4), weight=False).eval()
        with torch.no_grad():
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
        return nn.Sequential(conv(3, 4), conv(4, 4, weight=False), norm, *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        int8 = isinstance(module, Int8Conv2d)  # train.frozen_weights=int8: folds in itself
        norm = site.wiring.norm_after(name, site.modules) \
            if frozen_conv(module) or int8 else None
        if norm is None or not foldable(norm):
            return None
        if not int8:
            swap(module, FrozenConv2d)
        module.__dict__[FOLDED_NORM] = norm
        swap(norm, FoldedNormAct2d if norm_act(norm) else FoldedBatchNorm2d)
        return ("frozen_convs", "folded_norms")


RULE = FoldNorm()
