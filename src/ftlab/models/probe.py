"""One observed forward pass: how hooks learn a model's wiring and sizes without training it."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def probe_forward(model: nn.Module, input_size: int, handles: Iterable[RemovableHandle]) -> None:
    """Run one zero image through `model` for the hooks behind `handles`, then remove them.

    Zeros draw no random numbers, so a resumed run's RNG stream is untouched.
    """
    observe(model, torch.zeros(1, 3, input_size, input_size), handles)


def observe(model: nn.Module, images: torch.Tensor, handles: Iterable[RemovableHandle]) -> None:
    """Run `images` through `model` for the hooks behind `handles`, then remove them.

    In eval mode and without gradients, so no BatchNorm running statistics move and nothing
    is kept for backward; every module's training flag is restored afterwards, whatever the
    strategy had set. The images go to the model's device and dtype.
    """
    modes = {module: module.training for module in model.modules()}
    try:
        parameter = next(model.parameters())
        with torch.no_grad():
            model.eval()(images.to(device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
