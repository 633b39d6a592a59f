"""Analytic training memory, counted per layer in TinyTL's manner (Cai et al., 2020, §2).

What backward needs, not what a framework happens to keep:
- a conv or linear layer stores its input only when its weight trains (a trainable bias
  needs only the output gradient);
- a norm layer stores its input when its scale γ trains, or when it is in training mode and
  a gradient must pass through it (batch statistics depend on every input);
- a ReLU-family activation stores a 1-bit mask when a gradient must pass through it; other
  activations (Hardswish, SiLU, ...) store their input;
- pooling, additions, upsampling and reshapes store nothing that scales with the batch.
A gradient "must pass through" a layer when some parameter before it in execution order
trains. Parameters count at 32 bit, frozen ones optionally at 8 bit (TinyTL quantises them);
gradients and Adam's two moments count for trainable parameters only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ftlab.efficient import gated_activation
from ftlab.models.partial import DELTA
from ftlab.models.probe import probe_forward

RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh)
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
STORES_INPUT = (nn.Hardswish, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh)


@dataclass(frozen=True)
class AnalyticMemory:
    activations: int
    parameters: int
    gradients: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.activations + self.parameters + self.gradients + self.optimizer


@dataclass(frozen=True)
class Layer:
    module: nn.Module
    input_numel: int
    """Elements of the layer's input for one image."""


def analytic_memory(model: nn.Module, input_size: int, batch_size: int,
                    frozen_bits: int = 32, optimizer_states: int = 2) -> AnalyticMemory:
    """Count bytes for `batch_size` images of `input_size` px (optimizer_states: tensors of
    state per trained parameter, as the optimizer's registration says: Adam 2, SGD with
    momentum 1, plain SGD 0)."""
    activations = sum(size for _, size in layer_bytes(model, input_size))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return AnalyticMemory(
        activations=int(activations * batch_size),
        parameters=int(4 * trainable + frozen * frozen_bits / 8),
        gradients=4 * trainable,
        optimizer=4 * trainable * optimizer_states)


def layer_bytes(model: nn.Module, input_size: int) -> list[tuple[Layer, float]]:
    """Each layer call, in execution order, with the bytes one image's input costs it in
    backward (what `analytic_memory` adds up, here per layer for per-block accounts)."""
    counted = []
    gradient_flows = False
    for layer in execution_order(model, input_size):
        counted.append((layer, _layer_bytes(layer, gradient_flows)))
        if any(p.requires_grad for p in layer.module.parameters(recurse=False)):
            gradient_flows = True
    return counted


def _layer_bytes(layer: Layer, gradient_flows: bool) -> float:
    """Bytes one image's input costs this layer in backward."""
    module, size = layer.module, layer.input_numel
    weight = getattr(module, "weight", None)
    update = module._parameters.get(DELTA)  # sparse_update's channel update of the weight
    weight_trains = (isinstance(weight, torch.Tensor) and weight.requires_grad) or \
        (update is not None and update.requires_grad)
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return 4.0 * size if weight_trains else 0.0
    if isinstance(module, NORMS):
        batch_statistics = module.training and isinstance(module, nn.modules.batchnorm._NormBase)
        return 4.0 * size if weight_trains or (batch_statistics and gradient_flows) else 0.0
    if isinstance(module, RELU_FAMILY):
        return size / 8.0 if gradient_flows else 0.0
    if isinstance(module, STORES_INPUT) or gated_activation(module) is not None:
        return 4.0 * size if gradient_flows else 0.0  # timm's own GELU module too
    if isinstance(module, nn.Dropout) and module.training:
        return size / 8.0 if gradient_flows else 0.0
    return 0.0


def execution_order(model: nn.Module, input_size: int) -> list[Layer]:
    """Leaf modules in the order a forward pass calls them, with their input sizes
    (a module called twice, like ResNet's shared ReLU, appears twice)."""
    layers: list[Layer] = []
    handles = [module.register_forward_pre_hook(
        lambda m, args: layers.append(Layer(m, args[0][0].numel())))
        for module in model.modules() if not list(module.children())]
    probe_forward(model, input_size, handles)
    return layers
