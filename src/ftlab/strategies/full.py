"""Standard fine-tuning: every parameter trains at the base learning rate."""

from ftlab.strategies.base import Strategy, register_strategy


@register_strategy
class Full(Strategy):
    """The whole pretrained network trains with a new head: exactly the base's defaults."""

    name = "full"
    summary = "fine-tune every layer from the pretrained weights, with a new head"
