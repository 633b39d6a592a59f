"""A squeeze-and-excitation gate (timm's, in EfficientNet and MobileNetV3 blocks) keeps its
activation's input instead of its output: `y * gate` recomputes y in backward."""

from __future__ import annotations

import sys

from torch import nn

from ftlab.efficient.gates import EfficientSqueezeExcite, GateScale, squeeze_excite
from ftlab.efficient.rules.base import SwapRule, conv, head


class SqueezeExcite(SwapRule):
    name = "squeeze_excite"
    summary = "a squeeze-and-excitation gate keeps its activation's input"
    engages = (GateScale,)
    swaps = (EfficientSqueezeExcite,)
    requires = ("kept_input",)
    target, counted = EfficientSqueezeExcite, ("gates",)

    def pattern(self) -> nn.Module | None:
        """timm's SqueezeExcite (the class `gates.squeeze_excite` matches), once timm is
        loaded: before that no model can hold one, and importing timm costs a second."""
        if "timm" not in sys.modules:
            return None
        from timm.models._efficientnet_blocks import SqueezeExcite as TimmSqueezeExcite

        return nn.Sequential(conv(3, 8), nn.SiLU(), TimmSqueezeExcite(8, rd_ratio=0.25),
                             conv(8, 4), *head(4))

    def matches(self, module: nn.Module) -> bool:
        return squeeze_excite(module)


RULE = SqueezeExcite()
