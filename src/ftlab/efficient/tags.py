"""What a norm layer was given, found again from what it returned, through public API only.

Three rules rebuild a tensor in backward from the input of the norm layer that made it: a
ReLU after a training BatchNorm (`rules/relu_rebuild.py`), the GELU of a frozen MLP
(`rules/recompute_mlp.py`) and a training layer reading a LayerNorm
(`rules/norm_input.py`). The norm's autograd node keeps that input anyway, but torch
offers no public way to read a C++ node's saved tensors by role. So the norm gets a forward
hook that tags its output tensor with its input (a Python attribute of the output, which
lives and dies with it), and a reader accepts the tag only while the tensor is still that
output, unchanged: its `grad_fn` is the node it had when tagged (an in-place op since, or a
view, gives another node). The hooks run before the module's other forward hooks, so a
user's hook that changes the output in place invalidates the tag. Keeping the tagged input
costs no memory: the norm's node keeps the same tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

TAG = "_ftlab_norm_input"
"""The attribute, on a tagged tensor, holding its `NormInput`."""
REBUILD_FROM = "_ftlab_rebuild_from"
"""On a ReLU or a training layer: the norms (each tagging its output) whose output it
rebuilds in backward instead of keeping it."""
TAG_HOOK = "_ftlab_tag_hook"
"""On a norm module or a frozen layer after one: the handle of its tagging hook."""


@dataclass(frozen=True, eq=False)
class NormInput:
    """A tensor computed from `input` by `norm` (and then by `layer`, where one follows)."""

    norm: nn.Module
    input: torch.Tensor
    node: Any
    """The tagged tensor's `grad_fn` when it was tagged."""
    layer: nn.Module | None = None


def tag_norm_outputs(norm: nn.Module) -> None:
    """Tag what `norm` returns in a forward pass that builds a graph (once per module)."""
    if TAG_HOOK not in norm.__dict__:
        norm.__dict__[TAG_HOOK] = norm.register_forward_hook(_tag_norm_output, prepend=True)


def carry_tags(layer: nn.Module) -> None:
    """Tag what `layer` returns with the tag of its input, while that input is still the
    tagged norm output (for rebuilding norm -> layer in backward)."""
    if TAG_HOOK not in layer.__dict__:
        layer.__dict__[TAG_HOOK] = layer.register_forward_hook(_carry_tag, prepend=True)


def tag_of(x: torch.Tensor, norms: Iterable[nn.Module], layer: nn.Module | None = None,
           take: bool = True) -> NormInput | None:
    """The tag on `x` (taken off it, unless `take` is false: several layers reading one
    norm output each rebuild it), if one of `norms` (then `layer`) made `x` and nothing
    changed it since; None otherwise."""
    found = _take(x) if take else _peek(x)
    if found is None or found.layer is not layer:
        return None
    return found if any(found.norm is norm for norm in norms) else None


def batch_statistics(norm: nn.Module) -> bool:
    """Whether a BatchNorm normalises with the batch's statistics (as `F.batch_norm`'s
    `training` argument in `nn.BatchNorm2d.forward`); other norms always do."""
    if not isinstance(norm, nn.BatchNorm2d):
        return True
    return norm.training or (norm.running_mean is None and norm.running_var is None)


def _tag_norm_output(norm: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    if (torch.is_grad_enabled() and args and isinstance(output, torch.Tensor)
            and output.grad_fn is not None and batch_statistics(norm)):
        output.__dict__[TAG] = NormInput(norm, args[0], output.grad_fn)


def _carry_tag(layer: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    found = _take(args[0]) if args else None
    if found is not None and found.layer is None and isinstance(output, torch.Tensor) \
            and output.grad_fn is not None:
        output.__dict__[TAG] = NormInput(found.norm, found.input, output.grad_fn, layer)


def _take(x: Any) -> NormInput | None:
    """The tag on `x`, taken off it (it holds the norm's input), if `x` is unchanged since."""
    found = x.__dict__.pop(TAG, None) if isinstance(x, torch.Tensor) else None
    return found if found is not None and x.grad_fn is found.node else None


def _peek(x: Any) -> NormInput | None:
    """The tag on `x`, left on it, if `x` is unchanged since."""
    found = x.__dict__.get(TAG) if isinstance(x, torch.Tensor) else None
    return found if found is not None and x.grad_fn is found.node else None
