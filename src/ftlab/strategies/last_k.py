"""Fine-tune only the last k backbone blocks and the head."""

from dataclasses import dataclass

from ftlab.config.schema import check_number
from ftlab.config.search import FloatRange, IntRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class LastKOptions:
    k: int = 3
    """How many final backbone blocks train (with the head); `ftlab strategies --model ARCH`
    shows how the architecture's blocks are numbered."""

    def __post_init__(self) -> None:
        check_number("strategy.k", self.k, low=1, high=10_000)


@register_strategy
class LastK(Strategy):
    """The top `strategy.k` blocks (as the architecture adapter numbers them) and the head
    train; everything below keeps its pretrained weights and statistics. k=3 on MobileNetV2
    is the reference report's "last-3-layers": features[16:19] and the classifier."""

    name = "last_k"
    summary = "fine-tune the last k backbone blocks (strategy.k) and the new head"
    Options = LastKOptions
    search_space = {"optim.lr": FloatRange(3e-5, 1e-2, log=True),
                    "strategy.k": IntRange(1, 8)}

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.block >= param.num_blocks - self.options.k
