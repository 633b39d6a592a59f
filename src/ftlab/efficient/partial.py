"""Memory-efficient partial layers (`ftlab.models.partial`, the `sparse_update` strategy):
backward keeps the layer's input once (the updated channels' gradient needs it) and
computes the weight gradient of the k updated output channels alone
(`convolution_backward` over grad_output[:, :k]: k/C of the work stock autograd does to
form the whole weight's gradient and slice it); the frozen weight is a parameter, kept at
no cost. The input gradient is the transposed convolution with the updated weight.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from ftlab.efficient.functions import input_gradient, pair
from ftlab.efficient.owned import mark, owned
from ftlab.models.partial import DELTA, PartialConv2d, PartialLinear, updated_weight


@owned
class PartialConv2dFunction(torch.autograd.Function):
    """conv2d(x, updated_weight(weight, delta), bias), weight frozen."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, delta: torch.Tensor,
                bias: torch.Tensor | None, stride: Any, padding: Any, dilation: Any,
                groups: int) -> torch.Tensor:
        mark(ctx, PartialConv2dFunction)
        ctx.save_for_backward(x, weight, delta)
        ctx.conv = (x.shape, stride, padding, dilation, groups)
        return F.conv2d(x, updated_weight(weight, delta), bias, stride, padding, dilation,
                        groups)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, delta = ctx.saved_tensors
        shape, stride, padding, dilation, groups = ctx.conv
        grad_x = grad_delta = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = input_gradient(shape, updated_weight(weight, delta).to(grad.dtype), grad,
                                    stride, padding, dilation, groups)
        if ctx.needs_input_grad[2]:
            dummy = grad.new_empty(1).expand(delta.shape)
            grad_delta = torch.ops.aten.convolution_backward(
                grad[:, :delta.shape[0]], x, dummy, None, pair(stride), pair(padding),
                pair(dilation), False, [0, 0], groups, (False, True, False))[1]
            grad_delta = grad_delta.to(delta.dtype)
        if ctx.needs_input_grad[3]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, None, grad_delta, grad_bias, None, None, None, None


@owned
class PartialLinearFunction(torch.autograd.Function):
    """linear(x, updated_weight(weight, delta), bias), weight frozen."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, delta: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        mark(ctx, PartialLinearFunction)
        ctx.save_for_backward(x, weight, delta)
        return F.linear(x, updated_weight(weight, delta), bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, delta = ctx.saved_tensors
        grad_x = grad_delta = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ updated_weight(weight, delta).to(grad.dtype)
        if ctx.needs_input_grad[2]:
            rows = grad.reshape(-1, grad.shape[-1])[:, :delta.shape[0]]
            grad_delta = (rows.t() @ x.reshape(-1, x.shape[-1])).to(delta.dtype)
        if ctx.needs_input_grad[3]:
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0)
        return grad_x, None, grad_delta, grad_bias


class EfficientPartialConv2d(PartialConv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return PartialConv2dFunction.apply(x, self.weight.detach(), getattr(self, DELTA),
                                           self.bias, self.stride, self.padding,
                                           self.dilation, self.groups)


class EfficientPartialLinear(PartialLinear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return PartialLinearFunction.apply(x, self.weight.detach(), getattr(self, DELTA),
                                           self.bias)
