"""Representation similarity of two networks, block by block: linear CKA on a probe batch.

Kornblith et al., "Similarity of Neural Network Representations Revisited" (ICML 2019).
Linear CKA compares the centred Gram matrices of two activation sets on the same inputs, so
it is invariant to orthogonal transforms and isotropic scaling of the features (a rotated
or rescaled layer computes the same thing) but not to arbitrary linear maps. Only the n x n
Gram matrices are kept, never the activations.
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.models import block_modules


def gram(features: torch.Tensor) -> torch.Tensor:
    """Centred linear Gram matrix (n x n, float64) of n examples' flattened features."""
    x = features.flatten(1).double()
    x = x - x.mean(dim=0, keepdim=True)
    return x @ x.T


def cka_from_grams(k: torch.Tensor, l: torch.Tensor) -> float:  # noqa: E741 - the paper's names
    """Linear CKA of two centred Gram matrices: <K, L> / (||K|| ||L||)."""
    denominator = float(k.norm() * l.norm())
    return float((k * l).sum()) / denominator if denominator > 0 else float("nan")


def cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two activation sets on the same n inputs."""
    return cka_from_grams(gram(x), gram(y))


@torch.no_grad()
def block_grams(model: nn.Module, blocks: list[tuple[str, ...]], images: torch.Tensor
                ) -> list[torch.Tensor]:
    """Gram matrices of every block's output (the last module of each block) for `images`."""
    grams: list[torch.Tensor | None] = [None] * len(blocks)
    handles = []
    for index, prefixes in enumerate(blocks):
        module = block_modules(model, prefixes)[-1]
        handles.append(module.register_forward_hook(
            lambda m, args, out, index=index: grams.__setitem__(index, gram(out))))
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return [g for g in grams if g is not None]


def cka_matrix(grams_a: list[torch.Tensor], grams_b: list[torch.Tensor]) -> list[list[float]]:
    """CKA of every block of A against every block of B."""
    return [[cka_from_grams(ka, kb) for kb in grams_b] for ka in grams_a]
