"""`train.frozen_weights`: how a prepared model stores the weights its strategy never trains."""

from __future__ import annotations

import logging

from torch import nn

from ftlab.efficient import quantize_frozen_weights
from ftlab.errors import ConfigError
from ftlab.models import ArchAdapter
from ftlab.strategies import Strategy

log = logging.getLogger("ftlab")


def store_frozen_weights(model: nn.Module, strategy: Strategy, adapter: ArchAdapter,
                         storage: str, quiet: bool = False, required: bool = True) -> int:
    """With storage int8, quantise every conv / linear weight `strategy` trains at no epoch
    (a weight that gradual unfreezing trains later stays fp32); returns how many. A
    strategy that trains every weight leaves nothing to store in 8 bits: refused where
    `required` (training), else left as it is (a memory table of every strategy)."""
    if storage == "fp32":
        return 0
    trained = {info.name for info, _ in strategy.parameters(model, adapter)
               if strategy.is_optimized(info)}
    count, saved = quantize_frozen_weights(model, keep=trained)
    if count == 0 and required:
        raise ConfigError(f"train.frozen_weights={storage} with strategy {strategy.name!r}: it "
                          "trains every conv and linear weight (at some epoch), so no weight "
                          "is frozen to store in 8 bits; use train.frozen_weights=fp32 or a "
                          "strategy that freezes weights (bias, tinytl, linear_probe, lora...)")
    if not quiet:
        log.info("frozen weights: %d conv/linear weights stored in int8 (%.1f MiB saved)",
                 count, saved / 2**20)
    return count
