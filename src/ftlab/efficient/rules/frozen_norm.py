"""An eval-mode BatchNorm with a frozen γ that no frozen conv could absorb keeps nothing.

Folding (`fold_norm.py`) needs the norm to read a frozen conv's output directly. Where it
reads anything else (the sum a LoRA-wrapped layer returns, IA3's scaled output, a trained
conv's output), stock `batch_norm` still keeps its whole input for backward, although
with fixed statistics and γ it is a per-channel affine map whose input gradient needs only
the scale. Run as that map (`modules.AffineBatchNorm2d`), it keeps the scale alone.
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.modules import NORM_ACT, AffineBatchNorm2d
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap, trainable
from ftlab.efficient.rules.fold_norm import foldable
from ftlab.efficient.wiring import norm_act


class FrozenNorm(Rule):
    name = "frozen_norm"
    summary = "an eval-mode BatchNorm with a frozen γ keeps no input"
    swaps = (AffineBatchNorm2d,)
    keeps = (NORM_ACT,)

    def pattern(self) -> nn.Module:
        norm = trainable(nn.BatchNorm2d(4), weight=False).eval()
        with torch.no_grad():
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
        return nn.Sequential(conv(3, 4), norm, nn.ReLU(), conv(4, 4), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if not foldable(module):
            return None
        if norm_act(module):
            module.__dict__[NORM_ACT] = True
        swap(module, AffineBatchNorm2d)
        return ("frozen_norms",)


RULE = FrozenNorm()
