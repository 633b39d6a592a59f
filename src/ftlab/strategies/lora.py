"""LoRA: a trained low-rank update beside each frozen adapted layer (Hu et al., ICLR 2022),
through peft."""

from __future__ import annotations

from typing import Any, ClassVar

from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import RankedPeftStrategy


@register_strategy
class Lora(RankedPeftStrategy):
    """Each targeted layer keeps its pretrained weight W frozen and learns ΔW = B A of rank
    `strategy.r` (A: input -> r channels, B: r -> output channels, B starting at zero, so
    training starts from the pretrained network), scaled by alpha / r; plus the new head.
    On convolutions A has the layer's kernel and B is 1x1, as in peft."""

    name = "lora"
    method = "LoRA"
    summary = "LoRA: low-rank updates (strategy.r) of the targeted frozen layers, + head"
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}
    use_dora: ClassVar[bool] = False
    """DoRA (dora.py) is LoRA with this set."""

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.LoraConfig(r=self.options.r, lora_alpha=self.options.alpha,
                               lora_dropout=self.options.dropout, target_modules=targets,
                               use_dora=self.use_dora)
