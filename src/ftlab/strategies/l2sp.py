"""L2-SP (Li et al., arXiv 1802.01483): fine-tune everything, pulled towards the start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ftlab.config.schema import check_number
from ftlab.models.adapters import ArchAdapter
from ftlab.config.search import FloatRange
from ftlab.strategies.base import Strategy, register_strategy


@dataclass(frozen=True)
class L2SPOptions:
    alpha: float = 0.1
    """Weight of the squared distance of backbone parameters to their pretrained values."""
    beta: float = 0.01
    """Weight of the plain L2 penalty on the new head."""

    def __post_init__(self) -> None:
        check_number("strategy.alpha", self.alpha, low=0.0, high=1e6)
        check_number("strategy.beta", self.beta, low=0.0, high=1e6)


@register_strategy
class L2SP(Strategy):
    """Every parameter trains; the loss adds alpha/2 * ||w - w0||^2 over the pretrained
    parameters (w0: their values before training) and beta/2 * ||w||^2 over the new head,
    so the network may move only as far from its starting point as the data pays for.
    Use it with optim.weight_decay=0: the penalty replaces plain weight decay. The starting
    values are kept in checkpoints, so a resumed run pulls towards the same point.
    """

    name = "l2sp"
    summary = "every layer trains, with an L2 pull towards the pretrained weights (alpha, beta)"
    Options = L2SPOptions
    search_space = {"optim.lr": FloatRange(1e-5, 3e-3, log=True),
                    "strategy.alpha": FloatRange(1e-3, 1.0, log=True)}

    def __init__(self, config) -> None:
        super().__init__(config)
        self.reference: dict[str, torch.Tensor] = {}
        self.head_names: list[str] = []

    def prepare(self, model: nn.Module, adapter: ArchAdapter, input_size: int = 224
                ) -> list[str]:
        trainable = super().prepare(model, adapter, input_size)
        for info, param in self.parameters(model, adapter):
            if info.is_head:
                self.head_names.append(info.name)
            elif not info.is_new:
                self.reference[info.name] = param.detach().clone()
        return trainable

    def penalty(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        device = next(iter(params.values())).device
        if any(v.device != device for v in self.reference.values()):
            self.reference = {k: v.to(device) for k, v in self.reference.items()}
        drift = sum((params[k] - w0).pow(2).sum() for k, w0 in self.reference.items())
        head = sum(params[k].pow(2).sum() for k in self.head_names)
        return 0.5 * self.options.alpha * drift + 0.5 * self.options.beta * head

    def state_dict(self) -> dict[str, Any]:
        return {"reference": {k: v.cpu() for k, v in self.reference.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = dict(state["reference"])
