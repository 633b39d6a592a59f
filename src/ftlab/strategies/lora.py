"""LoRA: a trained low-rank update beside each frozen adapted layer (Hu et al., ICLR 2022),
through peft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ftlab.config.schema import check_number
from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import PeftStrategy, check_rank
from ftlab.strategies.targets import TargetOptions


@dataclass(frozen=True)
class LoraOptions(TargetOptions):
    r: int = 8
    """Rank of each update (`lora_B @ lora_A`); at most the layer's width."""
    alpha: float = 16.0
    """The update is scaled by alpha / r, so changing r keeps the update's size."""
    dropout: float = 0.0
    """Dropout on the adapter's input (the frozen path sees the input unchanged)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("strategy.r", self.r, low=1, high=4096)
        check_number("strategy.alpha", self.alpha, low=0.0, low_open=True)
        check_number("strategy.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


@register_strategy
class Lora(PeftStrategy):
    """Each targeted layer keeps its pretrained weight W frozen and learns ΔW = B A of rank
    `strategy.r` (A: input -> r channels, B: r -> output channels, B starting at zero, so
    training starts from the pretrained network), scaled by alpha / r; plus the new head.
    On convolutions A has the layer's kernel and B is 1x1, as in peft."""

    name = "lora"
    method = "LoRA"
    summary = "LoRA: low-rank updates (strategy.r) of the targeted frozen layers, + head"
    Options = LoraOptions
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}
    use_dora: ClassVar[bool] = False
    """DoRA (dora.py) is LoRA with this set."""

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoraConfig(r=self.options.r, lora_alpha=self.options.alpha,
                               lora_dropout=self.options.dropout, target_modules=targets,
                               use_dora=self.use_dora)

    def check_layer(self, name: str, module: nn.Module) -> None:
        check_rank(self.name, self.options.r, name, module)
