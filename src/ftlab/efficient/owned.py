"""The autograd functions ftlab owns, and how a tensor says which one made it.

Memory-efficient layers find what the layer before them keeps for backward by looking at
their input's `grad_fn`. For ftlab's own functions that node is the function's `ctx`
(documented autograd behaviour for `torch.autograd.Function`), so each owned function
writes its class onto its ctx in forward (`mark`) and readers ask `made_by(tensor)`:
an explicit registry instead of matching the generated node classes by name, which torch
does not promise to keep.
"""

from __future__ import annotations

from typing import Any

import torch

OWNER = "ftlab_function"
"""The ctx attribute that names the owned function which made a node."""

OWNED: set[type[torch.autograd.Function]] = set()


def owned(cls: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """Class decorator: register `cls` as one of ftlab's functions (its forward must call
    `mark`)."""
    OWNED.add(cls)
    return cls


def mark(ctx: Any, cls: type[torch.autograd.Function]) -> None:
    """Record on `ctx` (the output's node) that `cls` made it."""
    if cls not in OWNED:
        raise TypeError(f"{cls.__name__} is not registered with @owned")
    setattr(ctx, OWNER, cls)


def made_by(x: torch.Tensor) -> type[torch.autograd.Function] | None:
    """The owned function whose output `x` is, or None (a leaf, or any other op)."""
    node = x.grad_fn
    return getattr(node, OWNER, None) if node is not None else None
