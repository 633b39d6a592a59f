"""Bias-only fine-tuning (BitFit; TinyTL's FT-Bias): every bias, norm β included, + head."""

from ftlab.config.search import FloatRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@register_strategy
class BiasOnly(Strategy):
    """Trains every parameter named `bias`: convolution and linear biases and the β of
    every norm layer (MobileNetV2's convolutions have none, so there it is the norms'
    β), plus the head. Pretrained norm layers keep their running statistics by default, so
    only the shifts adapt (norm_stats=update lets the statistics follow the new data); fixed
    statistics are also what lets memory-efficient training drop their saved inputs."""

    name = "bias"
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}
    summary = "train every bias (norm β included) and the new head; weights stay frozen"
    freezes_pretrained_norm_stats = True

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or param.is_bias
