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


def leaf_input_elements(model: nn.Module, input_size: int) -> int:
    """Elements of every leaf module's input for one image of `input_size` px (a module
    called twice counts twice): what stock autograd keeps for a fully trained step, about."""
    total = [0]

    def count(module: nn.Module, args: tuple) -> None:
        total[0] += args[0].numel() if args and isinstance(args[0], torch.Tensor) else 0

    handles = [module.register_forward_pre_hook(count)
               for module in model.modules() if not list(module.children())]
    probe_forward(model, input_size, handles)
    return total[0]


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
