"""One observed forward pass: how hooks learn a model's wiring and sizes without training it."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def probe_forward(model: nn.Module, input_size: int, handles: Iterable[RemovableHandle]) -> None:
    """Run one zero image through `model` for the hooks behind `handles`, then remove them.

    In eval mode and without gradients, so no BatchNorm running statistics move and nothing
    is kept for backward; every module's training flag is restored afterwards, whatever the
    strategy had set. Zeros draw no random numbers, so a resumed run's RNG stream is untouched.
    """
    modes = {module: module.training for module in model.modules()}
    try:
        parameter = next(model.parameters())
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size, dtype=parameter.dtype,
                                     device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
