"""Frozen MLPs whose hidden activation is recomputed in backward instead of kept.

A ConvNeXt block with frozen weights (bias-only, TinyTL) runs LayerNorm -> fc1 -> GELU ->
fc2. Backward needs exactly two tensors from it: the LayerNorm's input x (its own backward)
and the GELU's input h = fc1(norm(x)), four times wider. The LayerNorm keeps x anyway, so
the GELU can keep that same x (no new memory) and rebuild h in backward by running the
norm and fc1 forward again: the same modules on the same tensors, hence the same h bit for
bit, and the gradient stock autograd computes.

The price is one more fc1 forward per step, and the bytes it frees per multiply-add are
1 / (fc1's input width): recomputing pays most in early, narrow, high-resolution blocks.
`choose` spends a fixed budget of multiply-adds there first (`RECOMPUTE_BUDGET`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ftlab.efficient.functions import (
    ACTIVATIONS,
    FrozenConv2dFunction,
    FrozenLinearFunction,
    activation_grad,
)
from ftlab.efficient.owned import made_by, mark, owned

RECOMPUTE = "_ftlab_recompute"  # on a planned activation: (norm module, fc1 module)
RECOMPUTE_BUDGET = 0.15
"""Multiply-adds the plan may add per step to rebuild hidden activations, as a share of the
network's forward pass (a frozen network's step costs about two forward passes, so at most
~7 % more time)."""

_PRODUCERS = (FrozenLinearFunction, FrozenConv2dFunction)
_LAYOUT_NODES = {"PermuteBackward0", "ViewBackward0", "ReshapeAliasBackward0"}
LAYER_NORM_NODE, LAYER_NORM_INPUT = "NativeLayerNormBackward0", "_saved_input"
"""torch's layer_norm node and its private name for the input it keeps (no public API gives
a C++ node's saved tensors by role): the self-check's rule recompute_mlp finds out when a
torch release changes either, and switches the rule off."""


def plain_layer_norm(module: nn.Module) -> bool:
    """A LayerNorm whose forward is F.layer_norm (torch's, timm's LayerNorm over the last
    dim, timm's LayerNorm2d over channels), not a fused or apex kernel."""
    return isinstance(module, nn.LayerNorm) and not getattr(module, "_fast_norm", False)


def _module_input(norm: nn.Module, kept: torch.Tensor) -> torch.Tensor:
    """The norm module's input from the tensor its layer_norm kept: timm's LayerNorm2d
    permutes NCHW to NHWC before normalising."""
    return kept.permute(0, 3, 1, 2) if type(norm).__name__ == "LayerNorm2d" else kept


def kept_norm_input(h: torch.Tensor) -> torch.Tensor | None:
    """The input that the layer_norm two nodes before `h` (norm -> frozen layer -> h) keeps
    for its backward, or None where the graph is not that."""
    if made_by(h) not in _PRODUCERS:
        return None
    node = h.grad_fn.next_functions[0][0]
    while node is not None and type(node).__name__ in _LAYOUT_NODES:
        node = node.next_functions[0][0]
    if node is None or type(node).__name__ != LAYER_NORM_NODE:
        return None
    return getattr(node, LAYER_NORM_INPUT)


@owned
class RecomputedActivation(torch.autograd.Function):
    """act(h) keeping, instead of h, the tensor `remake` rebuilds h from."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, kept: torch.Tensor, kind: str,
                remake: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        mark(ctx, RecomputedActivation)
        ctx.kind, ctx.remake = kind, remake
        ctx.autocast = _autocast_state(h.device.type)
        ctx.save_for_backward(kept)
        return ACTIVATIONS[kind](h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (kept,) = ctx.saved_tensors
        device, enabled, dtype = ctx.autocast
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            h = ctx.remake(kept)
        return activation_grad(ctx.kind, h, grad), None, None, None


def _autocast_state(device: str) -> tuple[str, bool, torch.dtype]:
    """Autocast as the forward ran it: backward runs outside the forward's context, and the
    rebuilt h must match the forward's dtype to be the same h."""
    return device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)


def recomputed(h: torch.Tensor, kind: str, norm: nn.Module, fc1: nn.Module
               ) -> torch.Tensor | None:
    """act(h) through `RecomputedActivation` where h = fc1(norm(x)) and the norm keeps x;
    None where the graph is not that (then the caller keeps h as stock does)."""
    kept = kept_norm_input(h)
    if kept is None:
        return None

    def remake(x: torch.Tensor) -> torch.Tensor:  # the modules' own code, without hooks
        return fc1.forward(norm.forward(_module_input(norm, x)))

    return RecomputedActivation.apply(h, kept, kind, remake)


def choose(candidates: list[tuple[str, int, int]], total_macs: int,
           budget: float | None = None) -> list[str]:
    """The candidates (name, elements freed, multiply-adds to rebuild) to recompute: most
    elements freed per multiply-add first, while their multiply-adds fit `budget` (default
    `RECOMPUTE_BUDGET`) x `total_macs`."""
    budget = RECOMPUTE_BUDGET if budget is None else budget
    chosen, spent = [], 0
    for name, _, macs in sorted(candidates, key=lambda c: -c[1] / max(c[2], 1)):
        if spent + macs <= budget * total_macs:
            chosen.append(name)
            spent += macs
    return chosen
