"""Layers whose weight trains in its first output channels only (the `sparse_update`
strategy; Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022).

The pretrained weight stays a frozen parameter; the update is a parameter of its own,
`sparse_delta`, shaped like the first k output channels of the weight and zero at the start
(the network begins unchanged), so that the optimizer holds state for those channels only
and weight decay touches nothing else. The layer computes with weight[:k] + sparse_delta.
These classes run under stock autograd (which forms the whole weight's gradient and slices
it); memory-efficient execution swaps in `ftlab.efficient`'s partial layers, which keep the
input once and compute the k channels' gradient alone.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

DELTA = "sparse_delta"
"""The parameter name of a partial layer's update (state_dict key `<layer>.sparse_delta`)."""


def updated_weight(weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """weight with delta added to its first len(delta) output channels."""
    k = delta.shape[0]
    return torch.cat([weight[:k] + delta.to(weight.dtype), weight[k:]])


class PartialConv2d(nn.Conv2d):
    """A Conv2d whose first k output channels train through `sparse_delta`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, updated_weight(self.weight, getattr(self, DELTA)),
                                  self.bias)


class PartialLinear(nn.Linear):
    """A Linear whose first k output features train through `sparse_delta`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, updated_weight(self.weight, getattr(self, DELTA)), self.bias)


PARTIAL_CLASSES: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: PartialConv2d,
                                                           nn.Linear: PartialLinear}


def updated_channels(module: nn.Module, fraction: float) -> int:
    """How many output channels a fraction of `module`'s is: at least one; all of a grouped
    conv's (its output channels each read their own group)."""
    channels = module.weight.shape[0]
    if isinstance(module, nn.Conv2d) and module.groups > 1:
        return channels
    return max(1, math.ceil(fraction * channels))


def make_partial(module: nn.Module, fraction: float) -> int:
    """Turn a plain Conv2d / Linear into its partial class with a zero update for the first
    channels (`updated_channels`); returns how many."""
    k = updated_channels(module, fraction)
    weight = module.weight
    module.register_parameter(DELTA, nn.Parameter(torch.zeros(
        k, *weight.shape[1:], dtype=weight.dtype, device=weight.device)))
    module.__class__ = PARTIAL_CLASSES[type(module)]
    return k


def merged(module: nn.Module) -> nn.Module:
    """A partial layer as the plain layer it computes (the update added to its weight); the
    layer itself is left as it is."""
    plain = copy.copy(module)
    plain.__class__ = next(base for base, partial in PARTIAL_CLASSES.items()
                           if isinstance(module, partial))
    plain._parameters = {k: v for k, v in module._parameters.items() if k != DELTA}
    plain._parameters["weight"] = nn.Parameter(
        updated_weight(module.weight.detach(), getattr(module, DELTA).detach()),
        requires_grad=False)
    return plain
