"""Fine-tune only the last k backbone blocks and the head."""

from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@register_strategy
class LastK(Strategy):
    """The top `strategy.k` blocks (as the architecture adapter numbers them) and the head
    train; everything below keeps its pretrained weights and statistics. k=3 on MobileNetV2
    is the reference report's "last-3-layers": features[16:19] and the classifier."""

    name = "last_k"
    summary = "fine-tune the last k backbone blocks (strategy.k) and the new head"
    options = ("k",)

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.block >= param.num_blocks - self.config.k
