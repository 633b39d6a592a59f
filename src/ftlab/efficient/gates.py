"""Smooth activations, and what reads their output, keeping one tensor where stock autograd
keeps two.

A smooth activation `y = act(z)` (SiLU, Hardswish, GELU) keeps its input `z` for backward.
Whatever reads `y` and needs it in backward keeps `y` as well, a second tensor of the same
size: the squeeze-and-excitation gate's multiplication `y * g` in an MBConv block
(EfficientNet, MobileNetV3), and a training convolution or linear layer after it (the
depthwise convolution of MBConv, the second MLP layer of a ConvNeXt block), which need
their input for their weight's gradient. Here the activation keeps `z` as stock does,
under a node its readers can find (`recipe`), and they keep that same `z` (no new memory)
and recompute `y` in backward — an elementwise op, far cheaper than the convolutions
around it. A gate's output is recomputable the same way (`act(z) * g`), for the
convolution after the gate. Values and gradients are those of stock autograd: the same
kernels, with inputs recomputed bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ftlab.efficient.functions import ACTIVATIONS, NormClamp, NormClampFunction, activation_grad
from ftlab.efficient.owned import made_by, mark, owned
from ftlab.efficient.recompute import RECOMPUTE, NormRebuild, norm_recipe, recomputed
from ftlab.efficient.tags import REBUILD_FROM


@owned
class KeptInputActivation(torch.autograd.Function):
    """act(z) keeping z for backward, as stock autograd does, so that what reads the output
    can find z (`recipe`) instead of keeping the output too."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, kind: str) -> torch.Tensor:
        mark(ctx, KeptInputActivation)
        ctx.kind = kind
        ctx.save_for_backward(z)
        return ACTIVATIONS[kind](z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (z,) = ctx.saved_tensors
        return activation_grad(ctx.kind, z, grad), None


Recipe = tuple[tuple[torch.Tensor, ...], "str | NormClamp | NormRebuild"]
"""Tensors already kept for backward, and how `rebuild` makes a layer's input from them: an
activation's name, a clamped batch norm's description, or a LayerNorm to run again."""


def recipe(x: torch.Tensor) -> Recipe | None:
    """How to recompute `x` from what its producer keeps anyway: act(z) after a
    `KeptInputActivation`, act(z) * gate after a `GateScale`, a clamped batch norm after a
    `NormClampFunction`; None otherwise."""
    maker = made_by(x)
    if maker not in RECIPE_MAKERS:
        return None
    node = x.grad_fn
    return tuple(node.saved_tensors), node.kind  # type: ignore[union-attr]


def rebuild(tensors: tuple[torch.Tensor, ...], kind: str | NormClamp | NormRebuild
            ) -> torch.Tensor:
    if not isinstance(kind, str):  # a clamped batch norm, a LayerNorm: they rebuild it
        return kind(tensors)
    y = ACTIVATIONS[kind](tensors[0])
    return y * tensors[1] if len(tensors) == 2 else y


@owned
class GateScale(torch.autograd.Function):
    """y * gate for y = act(z), keeping z (which y's activation keeps already) and the gate,
    and recomputing y in backward."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, gate: torch.Tensor, z: torch.Tensor,
                kind: str) -> torch.Tensor:
        mark(ctx, GateScale)
        ctx.kind = kind
        ctx.save_for_backward(z, gate)
        return y * gate

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, gate = ctx.saved_tensors
        grad_y = grad * gate if ctx.needs_input_grad[0] else None
        grad_gate = None
        if ctx.needs_input_grad[1]:
            grad_gate = (grad * ACTIVATIONS[ctx.kind](z)).sum_to_size(gate.shape)
        return grad_y, grad_gate, None, None


RECIPE_MAKERS = (KeptInputActivation, GateScale, NormClampFunction)
"""Owned functions whose node keeps what their output is rebuilt from (`saved_tensors`) and
how (`kind`)."""


def scale(y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """y * gate, through `GateScale` where y's activation keeps its input."""
    made = recipe(y) if torch.is_grad_enabled() else None
    if made is None or not isinstance(made[1], str) or len(made[0]) != 1:  # not an activation's
        return y * gate
    return GateScale.apply(y, gate, made[0][0], made[1])


def _keep_input(module: nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """act(x) keeping x, or, where the plan chose to (`recompute.py`), keeping the input of
    the norm two layers back and rebuilding x from it in backward."""
    pair = module.__dict__.get(RECOMPUTE)
    y = recomputed(x, kind, *pair) if pair is not None else None
    return KeptInputActivation.apply(x, kind) if y is None else y


class EfficientSiLU(nn.SiLU):
    """SiLU keeping its input where stock does, findable by a gate after it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _keep_input(self, x, "silu")
        return F.silu(x, inplace=self.inplace)


class EfficientHardswish(nn.Hardswish):
    """Hardswish keeping its input where stock does, findable by a gate after it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _keep_input(self, x, "hardswish")
        return F.hardswish(x, inplace=self.inplace)


class EfficientGELU(nn.GELU):
    """Exact GELU keeping its input where stock does, findable by the layer after it (also
    timm's own GELU module, which has no `approximate`: it is exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        approximate = getattr(self, "approximate", "none")
        if torch.is_grad_enabled() and x.requires_grad and approximate == "none":
            return _keep_input(self, x, "gelu")
        return F.gelu(x, approximate=approximate)


@owned
class RecomputedInputConvFunction(torch.autograd.Function):
    """conv2d of a training weight whose input is recomputable (`recipe`): backward keeps
    the recipe's tensors (kept by the producer anyway) instead of the input, rebuilds the
    input, and calls the convolution backward stock autograd calls."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                made: Recipe, stride: Any, padding: Any, dilation: Any, groups: int
                ) -> torch.Tensor:
        mark(ctx, RecomputedInputConvFunction)
        tensors, ctx.kind = made
        ctx.save_for_backward(*tensors, weight)
        ctx.conv = (None if bias is None else list(bias.shape), stride, padding, dilation,
                    groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        *tensors, weight = ctx.saved_tensors
        x = rebuild(tuple(tensors), ctx.kind).to(grad.dtype)
        weight = weight.to(grad.dtype)  # as autocast cast them in forward
        bias_shape, stride, padding, dilation, groups = ctx.conv
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_shape is not None
                  and ctx.needs_input_grad[2]]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x, weight, bias_shape, stride, padding, dilation, False, [0, 0], groups,
            wanted)
        return grad_x, grad_w, grad_b, None, None, None, None, None


@owned
class RecomputedInputLinearFunction(torch.autograd.Function):
    """linear of a training weight whose input is recomputable (see the conv function)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                made: Recipe) -> torch.Tensor:
        mark(ctx, RecomputedInputLinearFunction)
        tensors, ctx.kind = made
        ctx.save_for_backward(*tensors, weight)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        *tensors, weight = ctx.saved_tensors
        weight = weight.to(grad.dtype)  # as autocast cast it in forward
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad_b = None
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            x = rebuild(tuple(tensors), ctx.kind).to(grad.dtype)
            grad_w = flat.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        return grad_x, grad_w, grad_b, None


def _input_recipe(layer: nn.Module, x: torch.Tensor) -> Recipe | None:
    """How a training layer rebuilds its input `x`: from the activation, gate or clamped
    norm that made it, or from the LayerNorm it reads (`rules/norm_input.py`)."""
    if not (torch.is_grad_enabled() and layer.weight.requires_grad):
        return None
    return recipe(x) or norm_recipe(x, layer.__dict__.get(REBUILD_FROM))


class RecomputedInputConv2d(nn.Conv2d):
    """A Conv2d with a training weight that, when its input is an activation's (or gate's)
    recomputable output, keeps what that producer keeps instead of the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        made = _input_recipe(self, x)
        if made is None:
            return super().forward(x)
        return RecomputedInputConvFunction.apply(x, self.weight, self.bias, made, self.stride,
                                         self.padding, self.dilation, self.groups)


class RecomputedInputLinear(nn.Linear):
    """A Linear with a training weight that keeps its recomputable input's recipe (an
    activation's, or a LayerNorm's input where it reads one: `REBUILD_FROM`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        made = _input_recipe(self, x)
        if made is None:
            return super().forward(x)
        return RecomputedInputLinearFunction.apply(x, self.weight, self.bias, made)


class EfficientSqueezeExcite(nn.Module):
    """timm's SqueezeExcite (EfficientNet, MobileNetV3 blocks): its own layers, with the
    final multiplication through `scale`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.conv_expand(self.act1(self.conv_reduce(x_se)))
        return scale(x, self.gate(x_se))


def squeeze_excite(module: nn.Module) -> bool:
    """timm's `_efficientnet_blocks.SqueezeExcite`, recognised by its class and layers."""
    kind = type(module)
    return kind.__name__ == "SqueezeExcite" and kind.__module__.startswith("timm.") and all(
        isinstance(getattr(module, name, None), nn.Module)
        for name in ("conv_reduce", "act1", "conv_expand", "gate"))


GATED_ACTIVATIONS: dict[type[nn.Module], type[nn.Module]] = {
    nn.SiLU: EfficientSiLU, nn.Hardswish: EfficientHardswish, nn.GELU: EfficientGELU}


def gated_activation(module: nn.Module) -> type[nn.Module] | None:
    """The class that replaces `module` if it is one of these activations (timm's exact GELU
    module, `timm.layers.activations.GELU`, included)."""
    kind = type(module)
    if kind in GATED_ACTIVATIONS:
        return GATED_ACTIVATIONS[kind]
    if kind.__name__ == "GELU" and kind.__module__ == "timm.layers.activations":
        return EfficientGELU
    return None
