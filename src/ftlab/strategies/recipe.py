"""The one recipe from settings to a model ready to train: build the architecture, load its
starting weights, re-initialise the head, let the strategy insert its modules and choose what
trains.

`ftlab train`, `ftlab memory`, `ftlab strategies` and `ftlab diff` all call `prepare_model`,
so a model measured, counted or compared is built exactly as the one trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ftlab.config.schema import StrategyConfig
from ftlab.errors import ConfigError
from ftlab.models import ArchAdapter, BuiltModel, WeightsSource, build_model
from ftlab.strategies.base import Strategy, get_strategy


@dataclass
class PreparedModel:
    """A model with its strategy applied, and what is needed to interpret it."""

    built: BuiltModel
    strategy: Strategy

    @property
    def model(self) -> nn.Module:
        return self.built.model

    @property
    def adapter(self) -> ArchAdapter:
        return self.built.adapter


def prepare_model(arch: str, weights: WeightsSource | str | None, strategy: StrategyConfig,
                  num_classes: int, input_size: int, *, seed: int = 0,
                  load_weights: bool = True) -> PreparedModel:
    """Build `arch` for `num_classes` with `strategy` applied at `input_size` px.

    Args:
        weights: A resolved source or a `model.weights` setting; loaded only when the strategy
            starts from pretrained weights and `load_weights` is set (a resume replaces them).
        seed: Seeds the head (and everything, for scratch); the strategy's inserted modules
            are initialised from `seed + 1` without touching the caller's random state.
    """
    chosen = get_strategy(strategy)
    built = build_model(arch, weights, num_classes,
                        pretrained=chosen.pretrained and load_weights, seed=seed)
    refused = built.adapter.input_size_error(built.model, input_size)
    if refused:
        raise ConfigError(refused)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        chosen.prepare(built.model, built.adapter, input_size=input_size)
    return PreparedModel(built, chosen)
