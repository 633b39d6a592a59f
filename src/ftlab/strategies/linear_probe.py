"""Feature extractor: a new linear head on a frozen backbone."""

from ftlab.config.search import FloatRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@register_strategy
class LinearProbe(Strategy):
    """Only the head trains. The backbone's norm layers have no trainable parameters and so
    stay in eval mode with their pretrained statistics: the features are exactly those of
    the pretrained network, whatever the batch (norm_stats=update would adapt them)."""

    name = "linear_probe"
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-1, log=True)}
    summary = "feature extractor: train the new head only, backbone and its statistics frozen"

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head
