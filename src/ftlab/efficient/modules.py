"""Drop-in module classes for memory-efficient training.

A planned module changes class (`module.__class__ = ...`), never its parameters, buffers or
place in the model: the state_dict keeps torchvision's keys and values, and removing the
plan restores the original classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ftlab.efficient.functions import (
    BlockAvgPoolFunction,
    FrozenConv2dFunction,
    FrozenLinearFunction,
    GlobalAvgPoolFunction,
    MaskedClampFunction,
    NormClampFunction,
    SharedClampFunction,
    WindowMaxPoolFunction,
    pair,
)
from ftlab.efficient.tags import REBUILD_FROM, tag_of

FOLDED_NORM = "_ftlab_folded_norm"  # kept in __dict__, so it is not registered as a child
SHARE_OUTPUT = "_ftlab_share_output"


class FrozenConv2d(nn.Conv2d):
    """A Conv2d whose weight is frozen: its input is not kept for backward. When a frozen,
    eval-mode BatchNorm follows it, that norm is folded in: the convolution uses weight x γ/σ
    and bias β - μγ/σ (+ its own bias x γ/σ), so β still receives its exact gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm: nn.BatchNorm2d | None = self.__dict__.get(FOLDED_NORM)
        scale, bias = None, self.bias
        if norm is not None:
            scale, bias = norm_affine(norm)
            if self.bias is not None:
                bias = bias + self.bias * scale
        return FrozenConv2dFunction.apply(x, self.weight.detach(), scale, bias, self.stride,
                                          self.padding, self.dilation, self.groups, 1)


def norm_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as the affine map it is: (γ/σ, β - μγ/σ), γ detached (it is
    frozen), β not (it may train)."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach()
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d folded into the convolution before it: here it passes its input on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FoldedNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d folded into the convolution before it: its dropout and
    activation (children it keeps) run on the folded output, as they ran on its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


class AffineBatchNorm2d(nn.BatchNorm2d):
    """An eval-mode BatchNorm2d with a frozen (or no) γ, run as the per-channel affine map
    it is: x * γ/σ + (β - μγ/σ). The multiplication keeps only the scale for backward and
    the addition nothing, where stock batch_norm keeps its whole input. β keeps its exact
    gradient. timm's BatchNormAct2d runs its dropout and activation after it, as before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = norm_affine(self)
        y = x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)
        if NORM_ACT in self.__dict__:
            y = self.act(self.drop(y))
        return y


NORM_ACT = "_ftlab_norm_act"
"""On an `AffineBatchNorm2d` that was timm's BatchNormAct2d: run its dropout and activation."""


class ZeroDropout(nn.Dropout):
    """Dropout with p = 0: the identity. Stock autograd still draws and keeps a mask, and
    its output hides the producer of its input from the layer after it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FrozenLinear(nn.Linear):
    """A Linear with a frozen weight: its input is not kept for backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FrozenLinearFunction.apply(x, self.weight.detach(), None, self.bias)


class EfficientReLU(nn.ReLU):
    """ReLU that keeps no copy of its input for backward: its own output when the next layer
    keeps that anyway (SHARE_OUTPUT), else a 1-bit mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _clamp(self, x, 0.0, None)
        return F.relu(x, inplace=self.inplace)


class EfficientReLU6(nn.ReLU6):
    """ReLU6 that keeps no copy of its input for backward (see EfficientReLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _clamp(self, x, 0.0, 6.0)
        return F.hardtanh(x, 0.0, 6.0, self.inplace)


def _clamp(module: nn.Module, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
    share = module.__dict__.get(SHARE_OUTPUT)
    norms = module.__dict__.get(REBUILD_FROM)
    made = tag_of(x, norms) if norms else None
    if not module.inplace:  # the caller may still need x: work on a copy, as stock would
        x = x.clone()
    if made is not None:  # after a training-mode BatchNorm: keep nothing, rebuild in backward
        norm = made.norm
        return NormClampFunction.apply(x, low, high, (made.input, norm.weight, norm.bias), norm)
    function = SharedClampFunction if share else MaskedClampFunction
    return function.apply(x, low, high)


class ShapeAvgPool2d(nn.AvgPool2d):
    """AvgPool2d (kernel = stride, no padding) that keeps only its input's shape for backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return BlockAvgPoolFunction.apply(x, _single(self.kernel_size))
        return super().forward(x)


class ShapeGlobalAvgPool2d(nn.AdaptiveAvgPool2d):
    """AdaptiveAvgPool2d(1) that keeps only its input's shape for backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return GlobalAvgPoolFunction.apply(x)
        return super().forward(x)


def _single(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


class WindowMaxPool2d(nn.MaxPool2d):
    """MaxPool2d that keeps one byte per output for backward (where in its window the
    maximum was) instead of its input and 8-byte indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return WindowMaxPoolFunction.apply(x, pair(self.kernel_size), pair(self.stride),
                                               pair(self.padding), self.ceil_mode)
        return super().forward(x)
