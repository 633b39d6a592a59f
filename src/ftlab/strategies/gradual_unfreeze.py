"""Gradual unfreezing (ULMFiT; fastai's `fine_tune`): the head first, then blocks top-down."""

from __future__ import annotations

from typing import Any

from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


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
    options = ("head_epochs", "blocks_per_stage", "epochs_per_stage")

    def __init__(self, config) -> None:
        super().__init__(config)
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def unfrozen_blocks(self) -> int:
        after_head = self.epoch - self.config.head_epochs
        if after_head <= 0:
            return 0
        stage = (after_head - 1) // self.config.epochs_per_stage + 1
        return stage * self.config.blocks_per_stage

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or param.block >= param.num_blocks - self.unfrozen_blocks()

    def is_optimized(self, param: ParamInfo) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "unfrozen_blocks": self.unfrozen_blocks()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
