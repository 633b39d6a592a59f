"""Layer-wise learning-rate decay (BEiT; timm's `layer_decay`)."""

from dataclasses import dataclass

from ftlab.config.schema import check_number
from ftlab.config.search import FloatRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class LayerDecayOptions:
    decay: float = 0.85
    """Learning-rate factor per block below the head (head x1, last block x decay, ...)."""

    def __post_init__(self) -> None:
        check_number("strategy.decay", self.decay, low=0.0, high=1.0, low_open=True)


@register_strategy
class LayerDecay(Strategy):
    """Every parameter trains at optim.lr x decay^(blocks below the head): the head at x1,
    the last backbone block at x decay, the stem at x decay^num_blocks. Blocks are numbered
    by the architecture adapter (MobileNetV2: features.0 to features.18, so the stem gets
    0.85^19 = 0.045 at the default decay). The multipliers are fixed per group, so every
    schedule applies on top of them."""

    name = "layer_decay"
    summary = "every layer trains, lr x decay^(depth from the top) (strategy.decay)"
    Options = LayerDecayOptions
    search_space = {"optim.lr": FloatRange(1e-5, 3e-3, log=True),
                    "strategy.decay": FloatRange(0.5, 0.95)}

    def lr_multiplier(self, param: ParamInfo) -> float:
        return self.options.decay ** (param.num_blocks - param.block)
