"""LoKr: a Kronecker-product update of each frozen adapted layer (Yeh et al., ICLR 2024,
LyCORIS), through peft."""

from __future__ import annotations

from typing import Any

from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import RankedPeftStrategy


@register_strategy
class Lokr(RankedPeftStrategy):
    """ΔW = W1 ⊗ (B A): a small full factor times a low-rank one (rank `strategy.r`), the
    fewest parameters of the low-rank family for a full-rank update; plus the new head."""

    name = "lokr"
    method = "LoKr"
    summary = "LoKr: Kronecker product of a small and a low-rank factor per layer, + head"
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoKrConfig(r=self.options.r, alpha=self.options.alpha,
                               rank_dropout=self.options.dropout, target_modules=targets)
