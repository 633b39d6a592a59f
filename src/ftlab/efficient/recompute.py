"""Frozen MLPs whose hidden activation is recomputed in backward instead of kept.

A ConvNeXt block with frozen weights (bias-only, TinyTL) runs LayerNorm -> fc1 -> GELU ->
fc2. Backward needs exactly two tensors from it: the LayerNorm's input x (its own backward)
and the GELU's input h = fc1(norm(x)), four times wider. The LayerNorm keeps x anyway, so
the GELU can keep that same x (no new memory; forward hooks on the norm and fc1 tag h with
it, `tags.py`) and rebuild h in backward by running the norm and fc1 forward again: the
same modules on the same tensors, hence the same h bit for bit, and the gradient stock
autograd computes.

The price is one more fc1 forward per step, and the bytes it frees per multiply-add are
1 / (fc1's input width): recomputing pays most in early, narrow, high-resolution blocks.
`choose` spends a fixed budget of multiply-adds there first (`RECOMPUTE_BUDGET`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ftlab.efficient.functions import ACTIVATIONS, activation_grad
from ftlab.efficient.owned import mark, owned
from ftlab.efficient.tags import tag_of

RECOMPUTE = "_ftlab_recompute"  # on a planned activation: (norm module, fc1 module)
RECOMPUTE_BUDGET = 0.2
"""Multiply-adds the plan may add per step to rebuild hidden activations, as a share of the
network's forward pass (a frozen network's step costs about two forward passes, so at most
~10 % more time). Every rebuild frees about one value per C multiply-adds on a layer of
width C, so the budget sets the trade directly: at 0.2 ViT-S/16 LoRA rebuilds seven of its
twelve MLP hidden activations, at 0.15 it rebuilt five (37 MiB more kept at batch 16 and
224 px; steps measured at 0.96-1.05x stock's speed either way, BENCHMARKS.md)."""


def plain_layer_norm(module: nn.Module) -> bool:
    """A LayerNorm whose forward is F.layer_norm (torch's, timm's LayerNorm over the last
    dim, timm's LayerNorm2d over channels), not a fused or apex kernel."""
    return isinstance(module, nn.LayerNorm) and not getattr(module, "_fast_norm", False)


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


class NormRebuild:
    """A norm layer's output rebuilt from the input its node keeps: the module's own forward
    (F.layer_norm over the same tensor and parameters, under the forward's autocast state),
    hence the same tensor bit for bit. A `gates.Recipe` kind."""

    def __init__(self, norm: nn.Module, device: str) -> None:
        self.norm, self.autocast = norm, _autocast_state(device)

    def __call__(self, kept: tuple[torch.Tensor, ...]) -> torch.Tensor:
        device, enabled, dtype = self.autocast
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            return self.norm.forward(kept[0])


def norm_recipe(x: torch.Tensor, norms: list[nn.Module] | None
                ) -> tuple[tuple[torch.Tensor, ...], NormRebuild] | None:
    """How to rebuild `x` from the input of the LayerNorm among `norms` that made it (its
    tag, `tags.py`, left on `x` for other readers); None where `x` is not that output."""
    made = tag_of(x, norms, take=False) if norms else None
    if made is None:
        return None
    return (made.input,), NormRebuild(made.norm, x.device.type)


def _autocast_state(device: str) -> tuple[str, bool, torch.dtype]:
    """Autocast as the forward ran it: backward runs outside the forward's context, and the
    rebuilt h must match the forward's dtype to be the same h."""
    return device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)


def recomputed(h: torch.Tensor, kind: str, norm: nn.Module, fc1: nn.Module
               ) -> torch.Tensor | None:
    """act(h) through `RecomputedActivation` where h = fc1(norm(x)), found by the tag the
    two carry (`tags.py`; the norm's node keeps x); None where h is not that (then the
    caller keeps h as stock does)."""
    made = tag_of(h, [norm], fc1)
    if made is None:
        return None

    def remake(x: torch.Tensor) -> torch.Tensor:  # the modules' own code, without hooks
        return fc1.forward(norm.forward(x))

    return RecomputedActivation.apply(h, made.input, kind, remake)


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
