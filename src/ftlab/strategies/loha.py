"""LoHa: a low-rank Hadamard-product update of each frozen adapted layer (FedPara, Hyeon-Woo
et al., ICLR 2022, as LyCORIS uses it), through peft."""

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
class LohaOptions(TargetOptions):
    r: int = 8
    """Rank of each of the two factors; their elementwise product reaches rank r²."""
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
class Loha(PeftStrategy):
    """ΔW = (B1 A1) ⊙ (B2 A2), each product of rank `strategy.r`: twice LoRA's parameters
    for an update of rank up to r², plus the new head."""

    name = "loha"
    method = "LoHa"
    summary = "LoHa: Hadamard product of two low-rank updates of the targeted layers, + head"
    Options = LohaOptions
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoHaConfig(r=self.options.r, alpha=self.options.alpha,
                               rank_dropout=self.options.dropout, target_modules=targets)

    def check_layer(self, name: str, module: nn.Module) -> None:
        check_rank(self.name, self.options.r, name, module)
