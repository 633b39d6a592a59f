"""FT-Norm+Last (TinyTL's baseline): the norm layers' γ and β, and the head."""

from ftlab.config.search import FloatRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@register_strategy
class NormLast(Strategy):
    """Every normalisation layer's scale and shift train, with the head; their running
    statistics update on the new data (norm_stats=freeze keeps the pretrained ones)."""

    name = "norm_last"
    default_lr = 3e-3  # by analogy with bias (both train norm parameters and the head)
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}
    summary = "train the norm layers' γ and β and the new head (FT-Norm+Last)"

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or param.is_norm
