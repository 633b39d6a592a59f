"""A training layer after SiLU/Hardswish/GELU keeps the activation's input instead of its
output: the activation keeps its input as stock does, under a node the layer can find, and
the layer recomputes the output from it in backward (`gates.py`)."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.gates import (
    KeptInputActivation,
    RecomputedInputConv2d,
    RecomputedInputConvFunction,
    RecomputedInputLinear,
    RecomputedInputLinearFunction,
    gated_activation,
)
from ftlab.efficient.rules.base import Rule, Site, conv, swap


def training_conv(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.weight.requires_grad
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


class KeptInput(Rule):
    name = "kept_input"
    summary = ("a training layer after SiLU/Hardswish/GELU keeps the activation's input "
               "instead of its output")
    engages = (KeptInputActivation, RecomputedInputConvFunction,
               RecomputedInputLinearFunction)

    def pattern(self) -> nn.Module:
        """SiLU -> training depthwise conv, GELU -> training conv, Hardswish -> training
        linear, and a training BatchNorm's ReLU -> training conv (which rebuilds it)."""
        return nn.Sequential(conv(3, 4), nn.SiLU(), conv(4, 4, groups=4), nn.GELU(),
                             conv(4, 4), nn.BatchNorm2d(4), nn.ReLU(inplace=True), conv(4, 4),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6),
                             nn.Hardswish(), nn.Linear(6, 3))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if training_conv(module):
            swap(module, RecomputedInputConv2d)
        elif type(module) is nn.Linear and module.weight.requires_grad:
            swap(module, RecomputedInputLinear)
        elif gated_activation(module) is not None:
            swap(module, gated_activation(module))
        else:
            return None
        return ()


RULE = KeptInput()
