"""Frozen conv and linear weights stored in 8 bits (`train.frozen_weights=int8`).

TinyTL's memory figures assume frozen weights kept in 8 bits; with bias-only training at a
fifth of full fine-tuning's peak, the frozen fp32 weights are a visible share of what is
left. Each frozen Conv2d / Linear weight becomes per-output-channel symmetric int8
(scale = max |w| / 127 per channel, the layout of torch.ao's and torchao's weight-only
int8), dequantised on the fly: in forward for the layer's own computation, and again in
backward for the input gradient, one layer at a time, so at most one layer's fp32 weight
exists at once besides the trained ones.

Why ftlab's own path rather than torchao's `quantize_(model, int8_weight_only())`: torchao
quantises nn.Linear only (its default filter; a CNN's weights are convolutions) and its
tensor subclass is meant for inference; here the frozen layer must also pass exact input
gradients (of the quantised network) in backward, which ftlab's frozen-layer functions
already do. The quantised layer keeps no input, like `FrozenConv2d`; an eval-mode BatchNorm
after it is folded in as the memory plan folds one into a frozen conv. Its depthwise
convolutions run in batch chunks on CPU (`_depthwise_chunks`), which bounds a copy oneDNN
makes of their input.

The state_dict keeps torchvision's keys: `weight` holds the dequantised values (the weights
the network computed with), so checkpoints, `ftlab eval`, `diff` and `export` read an int8
run like any; loading such a state_dict into a quantised layer quantises with the layer's
own scales, which gives back exactly its int8 values (a resume is bit-identical).
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from ftlab.efficient.functions import FrozenConv2dFunction, FrozenLinearFunction, scaled
from ftlab.efficient.modules import FOLDED_NORM, norm_affine

QMAX = 127


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, per-output-channel scale in the weight's dtype) of `weight`.

    The scale is made a fixed point of "dequantise, then take max |w| / 127 again": the
    dequantised weights, quantised anew (as a checkpoint is when loaded), give back the
    same values and scale bit for bit. Floating point does not promise (127 s) / 127 == s;
    one or two roundings reach a scale for which it holds."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = _scale(flat.abs().amax(dim=1))
    for _ in range(4):
        again = _scale((scale * QMAX))
        if torch.equal(again, scale):
            break
        scale = again
    values = torch.round(flat / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8)
    return values.reshape(weight.shape), scale


def _scale(amax: torch.Tensor) -> torch.Tensor:
    return torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))


def dequantize(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return scaled(values, scale)


DEPTHWISE_CHUNK_BYTES = 8 * 2**20


def _depthwise_chunks(x: torch.Tensor, groups: int) -> int:
    """Batch chunks for a depthwise convolution on CPU, so that no chunk's input exceeds
    `DEPTHWISE_CHUNK_BYTES`: oneDNN copies a contiguous input into its own blocked layout
    first, and at bias-only training's peak (MobileNetV2's block 2, 96 x 112 x 112 per
    image) that copy of the whole batch's input is a third of the step. Chunked, the copy
    is a chunk's; the outputs are joined (a depthwise output is a quarter of its input
    there). Same kernel, same values."""
    if x.device.type != "cpu" or groups == 1 or groups != x.shape[1] or x.dim() != 4:
        return 1
    return max(1, min(x.shape[0], -(-x.numel() * x.element_size() // DEPTHWISE_CHUNK_BYTES)))


class Int8Weight:
    """What a quantised layer adds to its class: the int8 store in place of the `weight`
    parameter, `weight` read back as its dequantised values, and torchvision's state_dict
    keys."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return dequantize(self.weight_int8, self.weight_scale)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)  # type: ignore[misc]
        destination[prefix + "weight"] = self.weight

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict,
                              strict: bool, missing: list, unexpected: list,
                              errors: list) -> None:
        """A `weight` (fp32, or what an int8 run saved) is quantised on arrival."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata,  # type: ignore
                                      strict, missing, unexpected, errors)
        key = prefix + "weight"
        if key in unexpected:
            unexpected.remove(key)
        if key not in state_dict:
            missing.append(key)
        elif state_dict[key].shape != self.weight_int8.shape:
            errors.append(f"size mismatch for {key}: copying a param with shape "
                          f"{tuple(state_dict[key].shape)}, the shape in the current model is "
                          f"{tuple(self.weight_int8.shape)}.")
        else:
            values, scale = quantize(state_dict[key].to(self.weight_scale))
            self.weight_int8.copy_(values)
            self.weight_scale.copy_(scale)


class Int8Conv2d(Int8Weight, nn.Conv2d):
    """A frozen Conv2d with an int8 weight; folds a following eval-mode BatchNorm in when
    the memory plan hands it one (`FOLDED_NORM`), as `FrozenConv2d` does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, bias = self.weight_scale, self.bias
        norm: nn.BatchNorm2d | None = self.__dict__.get(FOLDED_NORM)
        if norm is not None:
            norm_scale, bias = norm_affine(norm)
            if self.bias is not None:
                bias = bias + self.bias * norm_scale
            scale = scale * norm_scale.to(scale.dtype)
        return FrozenConv2dFunction.apply(x, self.weight_int8, scale, bias, self.stride,
                                          self.padding, self.dilation, self.groups,
                                          _depthwise_chunks(x, self.groups))


class Int8Linear(Int8Weight, nn.Linear):
    """A frozen Linear with an int8 weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FrozenLinearFunction.apply(x, self.weight_int8, self.weight_scale, self.bias)


INT8_CLASSES = {nn.Conv2d: Int8Conv2d, nn.Linear: Int8Linear}


def quantizable(module: nn.Module) -> bool:
    """A plain Conv2d (zero padding) or Linear whose weight is frozen."""
    weight = module._parameters.get("weight")
    return (type(module) in INT8_CLASSES and weight is not None and not weight.requires_grad
            and (type(module) is nn.Linear or module.padding_mode == "zeros"))


def quantize_frozen_weights(model: nn.Module, keep: Collection[str] = ()
                            ) -> tuple[int, int]:
    """Store every frozen Conv2d / Linear weight of `model` in int8, in place, except the
    parameters named in `keep` (those a strategy trains at a later epoch); returns (how
    many, bytes saved)."""
    count = saved = 0
    for name, module in list(model.named_modules()):
        if not quantizable(module) or f"{name}.weight".lstrip(".") in keep:
            continue
        weight = module._parameters.pop("weight")
        values, scale = quantize(weight.data)
        module.register_buffer("weight_int8", values, persistent=False)  # state_dict: weight
        module.register_buffer("weight_scale", scale, persistent=False)
        module.__class__ = INT8_CLASSES[type(module)]
        count += 1
        saved += weight.numel() * weight.element_size() - values.numel() - \
            scale.numel() * scale.element_size()
    return count, saved


def int8_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The int8 weights and their scales in `model` (frozen weights, not activations)."""
    return [t for m in model.modules() if isinstance(m, Int8Weight)
            for t in (m.weight_int8, m.weight_scale)]


def int8_bytes(model: nn.Module) -> int:
    """Bytes of the int8 weights and their scales in `model`."""
    return sum(m.weight_int8.numel() + m.weight_scale.numel() * m.weight_scale.element_size()
               for m in model.modules() if isinstance(m, Int8Weight))
