"""SSF: a trained scale and shift of the features after each adapted op, on a frozen
backbone (Lian et al., "Scaling & Shifting Your Features", NeurIPS 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ftlab.config.search import FloatRange
from ftlab.models.adapters import ArchAdapter
from ftlab.strategies.base import NORM_TYPES, ParamInfo, Strategy, register_strategy
from ftlab.strategies.targets import TargetOptions, role_layers

INIT_STD = 0.02
"""The paper's initialisation: scale ~ N(1, 0.02), shift ~ N(0, 0.02)."""


class ScaleShift(nn.Module):
    """y * scale + shift, per channel along `dim` of y."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(channels).normal_(1.0, INIT_STD))
        self.shift = nn.Parameter(torch.empty(channels).normal_(0.0, INIT_STD))
        self.dim = dim

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        shape = [1] * y.dim()
        shape[self.dim] = -1
        return y * self.scale.view(shape) + self.shift.view(shape)


class ScaleShifted(nn.Module):
    """`base_layer`, then its `ssf`. A wrapper rather than a forward hook: the layer after
    it then reads this module's output, not the base layer's, so no memory-efficient rule
    mistakes the pair for the base layer alone (a BatchNorm after a scaled conv is not
    folded into the conv)."""

    def __init__(self, base_layer: nn.Module, channels: int, dim: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.ssf = ScaleShift(channels, dim)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.ssf(self.base_layer(*args, **kwargs))


def channel_dim(layer: nn.Module) -> int:
    """Where `layer`'s output keeps its channels: 1 for NCHW maps, -1 for tokens."""
    channels_first = (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    if isinstance(layer, channels_first) or type(layer).__name__ == "LayerNorm2d":
        return 1
    return -1


def output_channels(layer: nn.Module) -> int | None:
    """Channels of `layer`'s output, for the layers SSF follows; None for others."""
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return layer.num_features
    if isinstance(layer, nn.GroupNorm):
        return layer.num_channels
    if isinstance(layer, nn.LayerNorm) and len(layer.normalized_shape) == 1:
        return layer.normalized_shape[0]
    return None


@dataclass(frozen=True)
class SsfOptions(TargetOptions):
    target: str = "all"
    """Layers whose output is scaled and shifted, by role joined with `+` (pointwise, conv,
    depthwise, qkv, proj, mlp; `auto`, `all`): the paper puts SSF after every operation."""
    after_norms: bool = True
    """Also scale and shift after every norm layer of the backbone (the paper's choice)."""


@register_strategy
class Ssf(Strategy):
    """After each targeted layer (and norm layer), y -> y * γ + β per channel, trained
    with the head; the backbone stays frozen. Linear in the features, so export folds
    every scale and shift into the layer before it: the exported network is the
    architecture itself, as the paper's re-parameterisation."""

    name = "ssf"
    summary = "SSF: trained per-channel scale and shift after each layer, + head"
    Options = SsfOptions
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True)}
    freezes_pretrained_norm_stats = True

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter, input_size: int
                       ) -> list[str]:
        chosen = list(role_layers(model, adapter, self.options.target))
        if self.options.after_norms:
            head = adapter.head_name(model)
            chosen += [name for name, module in model.named_modules()
                       if isinstance(module, NORM_TYPES) and output_channels(module)
                       and not name.startswith(head + ".")]
        order = list(dict(model.named_modules()))
        for name in sorted(set(chosen), key=order.index):
            layer = model.get_submodule(name)
            wrapped = ScaleShifted(layer, output_channels(layer), channel_dim(layer))
            _replace(model, name, wrapped)
        return [f"{name}.ssf" for name, module in model.named_modules()
                if isinstance(module, ScaleShifted)]

    def is_trainable(self, param: ParamInfo) -> bool:
        return (param.is_head or param.is_new or (self.options.bias and param.is_bias)
                or (self.options.norm and param.is_norm))

    def export_network(self, model: nn.Module) -> nn.Module:
        for name, module in list(model.named_modules()):
            if isinstance(module, ScaleShifted):
                _fold(module)
                _replace(model, name, module.base_layer)
        return model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@torch.no_grad()
def _fold(wrapped: ScaleShifted) -> None:
    """base_layer's weight and bias scaled and shifted in place, so that it alone computes
    what the wrapper computed (a missing bias is created)."""
    layer, scale, shift = wrapped.base_layer, wrapped.ssf.scale, wrapped.ssf.shift
    weight = getattr(layer, "weight", None)
    if weight is None:  # a norm without affine parameters: give it some
        layer.weight = nn.Parameter(torch.ones_like(scale))
        layer.bias = nn.Parameter(torch.zeros_like(shift))
        weight = layer.weight
    view = [-1] + [1] * (weight.dim() - 1)
    weight.mul_(scale.view(view))
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(shift))
    layer.bias.mul_(scale).add_(shift)
