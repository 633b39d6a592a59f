"""Gradual unfreezing (ULMFiT; fastai's `fine_tune`): the head first, then blocks top-down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftlab.config.schema import check_number
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class GradualUnfreezeOptions:
    head_epochs: int = 1
    """Epochs that train the head alone."""
    blocks_per_stage: int = 3
    """Backbone blocks unfrozen at each stage, from the top."""
    epochs_per_stage: int = 1
    """Epochs between stages."""

    def __post_init__(self) -> None:
        check_number("strategy.head_epochs", self.head_epochs, low=0, high=100_000)
        check_number("strategy.blocks_per_stage", self.blocks_per_stage, low=1, high=10_000)
        check_number("strategy.epochs_per_stage", self.epochs_per_stage, low=1, high=100_000)


@register_strategy
class GradualUnfreeze(Strategy):
    """Epochs 1..head_epochs train the head alone; then every `epochs_per_stage` epochs the
    next `blocks_per_stage` backbone blocks from the top join, until all train.

    The optimizer holds every parameter from the start: a frozen one has no gradient, so
    torch's optimizers leave it (and its weight decay) alone, and the learning-rate schedule
    and param groups never change shape. A frozen block's norm layers keep their statistics
    until it is unfrozen.
    """

    name = "gradual_unfreeze"
    summary = "head for head_epochs, then unfreeze blocks_per_stage blocks top-down per stage"
    Options = GradualUnfreezeOptions

    def __init__(self, config) -> None:
        super().__init__(config)
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def unfrozen_blocks(self) -> int:
        after_head = self.epoch - self.options.head_epochs
        if after_head <= 0:
            return 0
        stage = (after_head - 1) // self.options.epochs_per_stage + 1
        return stage * self.options.blocks_per_stage

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or param.block >= param.num_blocks - self.unfrozen_blocks()

    def is_optimized(self, param: ParamInfo) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "unfrozen_blocks": self.unfrozen_blocks()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
