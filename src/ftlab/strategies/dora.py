"""DoRA: LoRA on the direction of each weight, with its magnitude trained apart (Liu et
al., ICML 2024), through peft."""

from __future__ import annotations

from torch import nn

from ftlab.config.search import Choice, FloatRange
from ftlab.errors import ConfigError
from ftlab.strategies.base import register_strategy
from ftlab.strategies.lora import Lora


@register_strategy
class Dora(Lora):
    """Each targeted weight is split into a magnitude (one trained value per output channel)
    and a direction that LoRA updates (rank `strategy.r`): W' = m (W + B A) / ||W + B A||.
    Costs a weight norm per layer and step over LoRA; peft does not support it on grouped
    convolutions, and a layer with an all-zero output channel (a dead filter: pretrained
    MobileNetV2 has ten) would divide by zero, so `auto` leaves such layers out."""

    name = "dora"
    method = "DoRA"
    summary = "DoRA: LoRA on the weights' directions plus trained magnitudes, + head"
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.r": Choice((4, 8, 16))}
    use_dora = True

    def check_layer(self, name: str, module: nn.Module) -> None:
        super().check_layer(name, module)
        weight = getattr(module, "weight", None)
        if weight is None or weight.is_meta:
            return
        dead = int((weight.detach().flatten(1).norm(dim=1) == 0).sum())
        if dead:  # pretrained MobileNetV2 has 8 in its stem, 10 in all
            raise ConfigError(f"strategy dora cannot adapt layer {name}: {dead} of its output "
                              "channels have all-zero weights, and DoRA divides each channel "
                              "by its weight's norm (NaN from the first step); leave that "
                              "role out of strategy.target")
