"""LoKr: a Kronecker-product update of each frozen adapted layer (Yeh et al., ICLR 2024,
LyCORIS), through peft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ftlab.config.schema import check_number
from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import PeftStrategy, check_rank
from ftlab.strategies.targets import TargetOptions


@dataclass(frozen=True)
class LokrOptions(TargetOptions):
    r: int = 8
    """Rank of the larger Kronecker factor's low-rank decomposition."""
    alpha: float = 16.0
    """The update is scaled by alpha / r."""
    dropout: float = 0.0
    """Rank dropout: each step drops this share of the update's rank components."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("strategy.r", self.r, low=1, high=4096)
        check_number("strategy.alpha", self.alpha, low=0.0, low_open=True)
        check_number("strategy.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


@register_strategy
class Lokr(PeftStrategy):
    """ΔW = W1 ⊗ (B A): a small full factor times a low-rank one (rank `strategy.r`), the
    fewest parameters of the low-rank family for a full-rank update; plus the new head."""

    name = "lokr"
    method = "LoKr"
    summary = "LoKr: Kronecker product of a small and a low-rank factor per layer, + head"
    Options = LokrOptions
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoKrConfig(r=self.options.r, alpha=self.options.alpha,
                               rank_dropout=self.options.dropout, target_modules=targets)

    def check_layer(self, name: str, module: nn.Module) -> None:
        check_rank(self.name, self.options.r, name, module)
