"""LoHa: a low-rank Hadamard-product update of each frozen adapted layer (FedPara, Hyeon-Woo
et al., ICLR 2022, as LyCORIS uses it), through peft."""

from __future__ import annotations

from typing import Any

from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import RankedPeftStrategy


@register_strategy
class Loha(RankedPeftStrategy):
    """ΔW = (B1 A1) ⊙ (B2 A2), each product of rank `strategy.r`: twice LoRA's parameters
    for an update of rank up to r², plus the new head."""

    name = "loha"
    method = "LoHa"
    summary = "LoHa: Hadamard product of two low-rank updates of the targeted layers, + head"
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoHaConfig(r=self.options.r, alpha=self.options.alpha,
                               rank_dropout=self.options.dropout, target_modules=targets)
