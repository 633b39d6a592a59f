"""Training from scratch: the baseline that tells what the pretrained weights are worth."""

from ftlab.strategies.base import Strategy, register_strategy


@register_strategy
class Scratch(Strategy):
    """Same as `full`, but the backbone starts from random initialisation.

    Inputs keep the normalisation of the configured weights, so a scratch run and a
    fine-tuning run differ only in where the weights start.
    """

    name = "scratch"
    summary = "train every layer from random initialisation (the no-transfer baseline)"
    pretrained = False
