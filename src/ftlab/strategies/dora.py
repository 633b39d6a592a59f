"""DoRA: LoRA on the direction of each weight, with its magnitude trained apart (Liu et
al., ICML 2024), through peft."""

from __future__ import annotations

from ftlab.config.search import Choice, FloatRange
from ftlab.strategies.base import register_strategy
from ftlab.strategies.lora import Lora, LoraOptions


@register_strategy
class Dora(Lora):
    """Each targeted weight is split into a magnitude (one trained value per output channel)
    and a direction that LoRA updates (rank `strategy.r`): W' = m (W + B A) / ||W + B A||.
    Costs a weight norm per layer and step over LoRA; peft does not support it on grouped
    convolutions."""

    name = "dora"
    method = "DoRA"
    summary = "DoRA: LoRA on the weights' directions plus trained magnitudes, + head"
    Options = LoraOptions
    default_lr = 3e-3  # as bias and tinytl; benchmarks/lr_sweep_peft_mirror.yaml measures it
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}
    use_dora = True
