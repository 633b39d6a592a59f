"""The rewrites memory-efficient execution makes, by name, each with a tiny model of its
pattern for the self-check (`selfcheck.py`).

A rule is switched on or off as a whole: `plan.plan_model` applies only the rules it is
given. Some rules read what a torch autograd node keeps under private names (`internals`);
those are the ones a torch release can break without an error, which is why every rule is
checked against stock autograd before first use in a process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import sys

import torch
from torch import nn

from ftlab.efficient.functions import (
    BlockAvgPoolFunction,
    FrozenConv2dFunction,
    FrozenLinearFunction,
    GlobalAvgPoolFunction,
    MaskedClampFunction,
    NormClampFunction,
    SharedClampFunction,
)
from ftlab.efficient.gates import (
    EfficientSqueezeExcite,
    GateScale,
    KeptInputActivation,
    RecomputedInputConvFunction,
    RecomputedInputLinearFunction,
)
from ftlab.efficient.modules import FoldedBatchNorm2d, ZeroDropout
from ftlab.efficient.recompute import RecomputedActivation

PATTERN_SIZE = 8
"""Height and width of the self-check's images (and of the plan's probe for them)."""


@dataclass(frozen=True)
class Rule:
    """One rewrite of the plan."""

    name: str
    summary: str
    """What it saves, for warnings and docs."""
    pattern: Callable[[], nn.Module | None]
    """A tiny model in which the rule applies, trainable set and modes set as a strategy
    would; None while the pattern's library is not loaded (then nothing can match)."""
    engages: tuple[type[torch.autograd.Function], ...] = ()
    """Owned functions that the pattern's efficient forward must contain: one that is
    missing means the rule did not recognise its pattern (an internal it reads changed)."""
    swaps: tuple[type[nn.Module], ...] = ()
    """Module classes the plan must have installed in the pattern."""
    requires: tuple[str, ...] = ()
    """Rules it builds on; it is off when one of them is."""
    internals: str = ""
    """The private torch internals it reads, if any."""


def _trainable(module: nn.Module, weight: bool = True, bias: bool = True) -> nn.Module:
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(bias if name.endswith("bias") else weight)
    return module


def _conv(cin: int, cout: int, weight: bool = True, groups: int = 1) -> nn.Module:
    return _trainable(nn.Conv2d(cin, cout, 3, padding=1, groups=groups), weight)


def _head(channels: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 3)]


def _frozen_conv() -> nn.Module:
    return nn.Sequential(_conv(3, 4), _conv(4, 4, weight=False), *_head(4))


def _fold_norm() -> nn.Module:
    norm = _trainable(nn.BatchNorm2d(4), weight=False).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return nn.Sequential(_conv(3, 4), _conv(4, 4, weight=False), norm, *_head(4))


def _frozen_linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * PATTERN_SIZE ** 2, 8),
                         _trainable(nn.Linear(8, 8), weight=False), nn.Linear(8, 3))


def _relu() -> nn.Module:
    """ReLU6 read by a frozen conv (keeps a mask), ReLU read by a training conv (shares)."""
    return nn.Sequential(_conv(3, 4), nn.BatchNorm2d(4).eval(), nn.ReLU6(inplace=True),
                         _conv(4, 4, weight=False), nn.ReLU(), _conv(4, 4), *_head(4))


def _relu_rebuild() -> nn.Module:
    return nn.Sequential(_conv(3, 4), nn.BatchNorm2d(4), nn.ReLU6(inplace=True),
                         _conv(4, 4), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         _conv(4, 4, weight=False), *_head(4))


def _pools() -> nn.Module:
    return nn.Sequential(_conv(3, 4), nn.AvgPool2d(2), _conv(4, 4), *_head(4))


def _zero_dropout() -> nn.Module:
    return nn.Sequential(_conv(3, 4), nn.Dropout(0.0), _conv(4, 4), *_head(4))


def _kept_input() -> nn.Module:
    """SiLU -> training depthwise conv, GELU -> training conv, Hardswish -> training linear,
    and a training BatchNorm's ReLU -> training conv (which rebuilds it)."""
    return nn.Sequential(_conv(3, 4), nn.SiLU(), _conv(4, 4, groups=4), nn.GELU(),
                         _conv(4, 4), nn.BatchNorm2d(4), nn.ReLU(inplace=True), _conv(4, 4),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6),
                         nn.Hardswish(), nn.Linear(6, 3))


def _squeeze_excite() -> nn.Module | None:
    """timm's SqueezeExcite (the class `gates.squeeze_excite` matches), once timm is loaded:
    before that no model can hold one, and importing timm costs a second."""
    if "timm" not in sys.modules:
        return None
    from timm.models._efficientnet_blocks import SqueezeExcite

    return nn.Sequential(_conv(3, 8), nn.SiLU(), SqueezeExcite(8, rd_ratio=0.25),
                         _conv(8, 4), *_head(4))


class _TokenMLP(nn.Module):
    """Patches -> tokens -> LayerNorm -> frozen fc1 -> GELU -> frozen fc2, as in a frozen
    ConvNeXt block (biases train)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, stride=2)
        self.norm = _trainable(nn.LayerNorm(8), weight=False)
        self.fc1 = _trainable(nn.Linear(8, 16), weight=False)
        self.act = nn.GELU()
        self.fc2 = _trainable(nn.Linear(16, 8), weight=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.fc2(self.act(self.fc1(self.norm(tokens)))).mean(1))


RULES: dict[str, Rule] = {rule.name: rule for rule in [
    Rule("frozen_conv", "a Conv2d with a frozen weight keeps no input", _frozen_conv,
         engages=(FrozenConv2dFunction,)),
    Rule("fold_norm", "an eval-mode BatchNorm after a frozen conv is folded into it",
         _fold_norm, engages=(FrozenConv2dFunction,), swaps=(FoldedBatchNorm2d,),
         requires=("frozen_conv",)),
    Rule("frozen_linear", "a Linear with a frozen weight keeps no input", _frozen_linear,
         engages=(FrozenLinearFunction,)),
    Rule("relu", "ReLU/ReLU6 keep a 1-bit mask or share their output", _relu,
         engages=(MaskedClampFunction, SharedClampFunction)),
    Rule("relu_rebuild", "a ReLU after a training BatchNorm keeps nothing and rebuilds "
         "its input", _relu_rebuild, engages=(NormClampFunction,), requires=("relu",),
         internals="the batch_norm node's _saved_input, _saved_weight, _saved_result1/2"),
    Rule("pools", "average pools keep only their input's shape", _pools,
         engages=(BlockAvgPoolFunction, GlobalAvgPoolFunction)),
    Rule("zero_dropout", "dropout with p = 0 is the identity", _zero_dropout,
         swaps=(ZeroDropout,)),
    Rule("kept_input", "a training layer after SiLU/Hardswish/GELU keeps the activation's "
         "input instead of its output", _kept_input,
         engages=(KeptInputActivation, RecomputedInputConvFunction,
                  RecomputedInputLinearFunction)),
    Rule("squeeze_excite", "a squeeze-and-excitation gate keeps its activation's input",
         _squeeze_excite, engages=(GateScale,), swaps=(EfficientSqueezeExcite,),
         requires=("kept_input",)),
    Rule("recompute_mlp", "the GELU of a frozen MLP rebuilds its input from its LayerNorm's",
         _TokenMLP, engages=(RecomputedActivation,),
         requires=("frozen_linear", "kept_input"),
         internals="the layer_norm node's _saved_input"),
]}
"""Every rule, in the order the self-check tries them (a rule after those it requires)."""
