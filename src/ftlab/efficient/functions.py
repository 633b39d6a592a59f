"""Autograd functions that keep only what their backward needs.

Stock autograd is conservative: `convolution` saves its input even when the weight is
frozen (the input is needed only for the weight's gradient), eval-mode BatchNorm saves its
input, and in-place ReLU6 keeps a copy of its input. For a frozen backbone those saved
inputs are most of the training memory, which is why TinyTL's savings were only on paper.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ftlab.efficient.owned import mark, owned


ACTIVATIONS = {"silu": F.silu, "hardswish": F.hardswish, "gelu": F.gelu}


def activation_grad(kind: str, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The kernels stock autograd calls (aten's fused silu/hardswish/gelu backward)."""
    if kind == "silu":
        return torch.ops.aten.silu_backward(grad, z)
    if kind == "gelu":
        return torch.ops.aten.gelu_backward(grad, z)
    return torch.ops.aten.hardswish_backward(grad, z)


def input_gradient(shape: torch.Size, weight: torch.Tensor, grad: torch.Tensor, stride: Any,
                   padding: Any, dilation: Any, groups: int) -> torch.Tensor:
    """A convolution's input gradient as the transposed convolution it is, the
    output padding making up the rows and columns the forward's stride dropped.
    `torch.nn.grad.conv2d_input` hands `convolution_backward` an expanded dummy input that
    the CPU kernel copies to a full tensor the size of the input first: a transient as large
    as the activation the frozen layer saved by not keeping it (the same values, measured
    equal bit for bit)."""
    stride, padding, dilation = (pair(v) for v in (stride, padding, dilation))
    extra = [shape[i + 2] - ((grad.shape[i + 2] - 1) * stride[i] - 2 * padding[i]
                             + dilation[i] * (weight.shape[i + 2] - 1) + 1) for i in range(2)]
    return F.conv_transpose2d(grad, weight, None, stride, padding, extra, groups, dilation)


def pair(value: Any) -> tuple[int, int]:
    """An int or a 2-tuple (a conv's or pool's stride, padding...) as a 2-tuple."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


@owned
class FrozenConv2dFunction(torch.autograd.Function):
    """conv2d(x, weight * scale, bias) with a frozen weight: backward keeps the weight (a
    parameter, no extra memory) and the per-channel scale, never the input.

    `scale` is a folded BatchNorm's γ/σ, an int8 weight's dequantisation scale, or both
    multiplied (or None); the scaled weight is recomputed in backward instead of being
    saved. `chunks` > 1 runs the convolution a batch chunk at a time (the int8 path's
    depthwise convolutions: `ftlab.efficient.int8`).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
                bias: torch.Tensor | None, stride: Any, padding: Any, dilation: Any,
                groups: int, chunks: int = 1) -> torch.Tensor:
        mark(ctx, FrozenConv2dFunction)
        folded = scaled(weight, scale)
        ctx.save_for_backward(weight, scale)
        ctx.conv = (x.shape, stride, padding, dilation, groups)
        if chunks == 1:
            return F.conv2d(x, folded, bias, stride, padding, dilation, groups)
        return torch.cat([F.conv2d(part, folded, bias, stride, padding, dilation, groups)
                          for part in x.chunk(chunks)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, scale = ctx.saved_tensors
        shape, stride, padding, dilation, groups = ctx.conv
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = input_gradient(shape, scaled(weight, scale).to(grad.dtype), grad, stride,
                                    padding, dilation, groups)  # .to: autocast's dtype
        if ctx.needs_input_grad[3]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, None, None, grad_bias, None, None, None, None, None


def scaled(weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """weight x scale per output channel (an int8 weight comes out in the scale's dtype)."""
    if scale is None:
        return weight
    return weight * scale.view(-1, *[1] * (weight.dim() - 1))


@owned
class FrozenLinearFunction(torch.autograd.Function):
    """linear(x, weight * scale, bias) with a frozen weight: backward keeps the weight (and
    an int8 weight's per-row scale) only."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
                bias: torch.Tensor | None) -> torch.Tensor:
        mark(ctx, FrozenLinearFunction)
        ctx.save_for_backward(weight, scale)
        return F.linear(x, scaled(weight, scale), bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, scale = ctx.saved_tensors
        grad_x = grad @ scaled(weight, scale).to(grad.dtype) if ctx.needs_input_grad[0] \
            else None
        grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.needs_input_grad[3] else None
        return grad_x, None, None, grad_bias


@owned
class MaskedClampFunction(torch.autograd.Function):
    """In-place clamp(x, low, high) (ReLU: high=None) whose backward keeps a 1-bit mask of
    low < x < high instead of a float copy of x (32x smaller). For an activation whose
    output nothing else keeps: then the mask is all that backward needs.

    Mask and gradient are computed a chunk at a time, so their temporaries stay small (and
    in cache) instead of adding a full-size bool and float tensor to the peak.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
        mark(ctx, MaskedClampFunction)
        ctx.save_for_backward(pack_inside(x, low, high))  # saved the usual way: hooks see it
        ctx.shape = x.shape
        ctx.mark_dirty(x)
        return x.clamp_(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (packed,) = ctx.saved_tensors
        return masked_gradient(grad, packed), None, None


@owned
class SharedClampFunction(torch.autograd.Function):
    """In-place clamp(x, low, high) whose backward reads its own output, for an activation
    whose output the next layer keeps anyway (a training conv): low < y < high exactly
    where low < x < high, so no copy of x is needed (stock in-place ReLU6 keeps one)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
        mark(ctx, SharedClampFunction)
        ctx.mark_dirty(x)
        y = x.clamp_(low, high)
        ctx.save_for_backward(y)
        ctx.bounds = (low, high)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (y,) = ctx.saved_tensors
        low, high = ctx.bounds
        if high is None:
            return torch.ops.aten.threshold_backward(grad, y, low), None, None
        return torch.ops.aten.hardtanh_backward(grad, y, low, high), None, None


class NormClamp:
    """clamp(batch_norm(x), low, high) rebuilt from the norm's input (which its node keeps;
    `tags.py` finds it) by running the norm's own kernel again: the same input, weight, bias and eps give the
    same batch statistics and the same output, bit for bit. The running statistics are not
    touched (copies are passed, so that the same kernel is chosen).

    One per clamp in a forward pass. A training conv reading the clamp's output rebuilds it
    first in backward (for its weight's gradient) and leaves it here for the clamp's own
    backward, which runs next, so it is rebuilt once.
    """

    __slots__ = ("low", "high", "affine", "norm", "rebuilt")

    def __init__(self, low: float, high: float | None, affine: tuple[bool, bool],
                 norm: nn.Module) -> None:
        self.low, self.high, self.affine, self.norm = low, high, affine, norm
        self.rebuilt: torch.Tensor | None = None

    def normalized(self, kept: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The norm's output (clamped, if a reader rebuilt it already: the same derivative)."""
        if self.rebuilt is not None:
            rebuilt, self.rebuilt = self.rebuilt, None
            return rebuilt
        rest = list(kept[1:])
        weight = rest.pop(0) if self.affine[0] else None
        bias = rest.pop(0) if self.affine[1] else None
        stats = [None if t is None else t.clone()
                 for t in (self.norm.running_mean, self.norm.running_var)]
        return F.batch_norm(kept[0], *stats, weight, bias, True, 0.0, self.norm.eps)

    def __call__(self, kept: tuple[torch.Tensor, ...]) -> torch.Tensor:
        self.rebuilt = self.normalized(kept).clamp_(self.low, self.high)
        return self.rebuilt


@owned
class NormClampFunction(torch.autograd.Function):
    """In-place clamp(y, low, high) of a training-mode BatchNorm's output that keeps nothing
    of its own: backward rebuilds y from the norm's input, which the norm's node keeps
    anyway (`NormClamp`), and calls the kernel stock autograd calls; a training conv reading
    the output rebuilds it the same way (`gates.recipe`) instead of keeping it."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, low: float, high: float | None,
                kept: tuple[torch.Tensor | None, ...], norm: nn.Module) -> torch.Tensor:
        mark(ctx, NormClampFunction)
        ctx.mark_dirty(y)
        ctx.kind = NormClamp(low, high, (kept[1] is not None, kept[2] is not None), norm)
        ctx.save_for_backward(*(t for t in kept if t is not None))
        return y.clamp_(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        y = ctx.kind.normalized(ctx.saved_tensors)  # the output's dtype, as grad's
        low, high = ctx.kind.low, ctx.kind.high
        # written over y: one allocation, as stock has (fresh CPU memory costs page faults)
        if high is None:
            torch.ops.aten.threshold_backward.grad_input(grad, y, low, grad_input=y)
        else:
            torch.ops.aten.hardtanh_backward.grad_input(grad, y, low, high, grad_input=y)
        return y, None, None, None, None


CHUNK = 1 << 20  # elements per chunk of mask work: 1 MiB of bools, 4 MiB of floats
_MAGIC_PACK = 0x0102040810204080  # gathers the low bit of 8 bytes into the top byte
_MAGIC_SPREAD = 0x0101010101010101  # copies a byte into all 8 bytes of an int64
_BIT_SELECT = -0x7FBFDFEFF7FBFDFF  # 0x8040201008040201 as int64: byte i keeps bit 7 - i


def pack_inside(x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
    """Bits of low < x < high (x > low when high is None), eight per byte, in x's
    row-major order."""
    flat = x.detach().reshape(-1)
    packed = torch.empty((flat.numel() + 7) // 8, dtype=torch.uint8, device=x.device)
    for start in range(0, flat.numel(), CHUNK):
        part = flat[start:start + CHUNK]
        inside = part > low
        if high is not None:
            inside.logical_and_(part < high)
        packed[start // 8:(start + part.numel() + 7) // 8] = pack_bits(inside)
    return packed


def masked_gradient(grad: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """grad where the packed mask is set, zero elsewhere."""
    flat = grad.reshape(-1)
    out = torch.empty(grad.shape, dtype=grad.dtype, device=grad.device)
    out_flat = out.view(-1)
    for start in range(0, flat.numel(), CHUNK):
        stop = min(start + CHUNK, flat.numel())
        bits = unpack_bits(packed[start // 8:(stop + 7) // 8], stop - start)
        torch.mul(flat[start:stop], bits.to(grad.dtype), out=out_flat[start:stop])
    return out


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A 1-D bool tensor as uint8, eight elements per byte (zero-padded): one int64 multiply
    gathers eight 0/1 bytes into one."""
    pad = (-mask.numel()) % 8
    if pad:
        mask = torch.cat([mask, mask.new_zeros(pad)])
    words = mask.view(torch.uint8).view(torch.int64)
    return ((words * _MAGIC_PACK) >> 56).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` bits of `packed` as a uint8 0/1 tensor."""
    words = packed.to(torch.int64).mul_(_MAGIC_SPREAD).bitwise_and_(_BIT_SELECT)
    return words.view(torch.uint8)[:count].clamp_(max=1)


@owned
class BlockAvgPoolFunction(torch.autograd.Function):
    """avg_pool2d with kernel = stride = k and no padding, whose backward keeps only the
    input's shape (stock autograd keeps the whole input to learn its size)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: int) -> torch.Tensor:
        mark(ctx, BlockAvgPoolFunction)
        ctx.shape, ctx.k = x.shape, k
        return F.avg_pool2d(x, k, k)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        k = ctx.k
        spread = grad.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1) / (k * k)
        grad_x = grad.new_zeros(ctx.shape)
        grad_x[..., : spread.shape[-2], : spread.shape[-1]] = spread  # floor mode: rest is 0
        return grad_x, None


@owned
class GlobalAvgPoolFunction(torch.autograd.Function):
    """adaptive_avg_pool2d(x, 1) whose backward keeps only the input's shape."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        mark(ctx, GlobalAvgPoolFunction)
        ctx.shape = x.shape
        return x.mean(dim=(-2, -1), keepdim=True)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        height, width = ctx.shape[-2:]
        return (grad / (height * width)).expand(ctx.shape).contiguous(), None


@owned
class WindowMaxPoolFunction(torch.autograd.Function):
    """max_pool2d (dilation 1) whose backward keeps, per output, which element of its window
    was the maximum (one byte) instead of the whole input and 8-byte indices, as stock
    autograd keeps. ResNet's stem pool keeps 1/20 of what it did."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], ceil_mode: bool) -> torch.Tensor:
        mark(ctx, WindowMaxPoolFunction)
        out, indices = F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode,
                                    return_indices=True)
        ctx.shape, ctx.geometry = x.shape, (kernel, stride, padding)
        ctx.save_for_backward(_window_offsets(indices, x.shape[-1], *ctx.geometry))
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (offsets,) = ctx.saved_tensors
        indices = _flat_indices(offsets, ctx.shape[-1], *ctx.geometry)
        grad_x = grad.new_zeros(*ctx.shape[:-2], ctx.shape[-2] * ctx.shape[-1])
        grad_x.scatter_add_(-1, indices.flatten(-2), grad.flatten(-2))
        return grad_x.view(ctx.shape), None, None, None, None


def _window_origins(shape: torch.Size, kernel: tuple[int, int], stride: tuple[int, int],
                    padding: tuple[int, int], device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each output's window's first element in the input."""
    rows = torch.arange(shape[-2], device=device).view(-1, 1) * stride[0] - padding[0]
    cols = torch.arange(shape[-1], device=device).view(1, -1) * stride[1] - padding[1]
    return rows, cols


def _window_offsets(indices: torch.Tensor, width: int, kernel: tuple[int, int],
                    stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """Flat input indices of the maxima -> their place in their window (row-major), uint8."""
    rows, cols = _window_origins(indices.shape, kernel, stride, padding, indices.device)
    row = torch.div(indices, width, rounding_mode="floor")
    col = indices - row * width
    return ((row - rows) * kernel[1] + (col - cols)).to(torch.uint8)


def _flat_indices(offsets: torch.Tensor, width: int, kernel: tuple[int, int],
                  stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    rows, cols = _window_origins(offsets.shape, kernel, stride, padding, offsets.device)
    offsets = offsets.to(torch.int64)
    row = rows + torch.div(offsets, kernel[1], rounding_mode="floor")
    return row * width + cols + offsets.remainder(kernel[1])
