"""Deterministic, stratified index splits: the same seed gives the same split on any machine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch


def stratified_split(targets: Sequence[int], fraction: float, seed: int
                     ) -> tuple[list[int], list[int]]:
    """Split indices into (kept, held_out), holding out `fraction` of every class.

    Every class with two or more samples keeps at least one and, when fraction > 0, gives at
    least one, so a small class is never missing from either side. The permutation comes from
    a `torch.Generator` seeded with `seed`, which is stable across platforms and versions.
    """
    return _split(targets, seed, lambda n: _held_count(n, fraction))


def label_subset(targets: Sequence[int], fraction: float, seed: int) -> list[int]:
    """Indices of `fraction` of every class (at least one each), for label-efficiency runs."""
    _, kept = _split(targets, seed, lambda n: max(1, round(fraction * n)) if n else 0)
    return kept


def _split(targets: Sequence[int], seed: int, take: Callable[[int], int]
           ) -> tuple[list[int], list[int]]:
    """(rest, taken): per class, `take(n)` indices drawn by a seeded permutation."""
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(targets):
        by_class[int(label)].append(index)
    rest: list[int] = []
    taken: list[int] = []
    for label in sorted(by_class):
        indices = by_class[label]
        order = torch.randperm(len(indices), generator=generator).tolist()
        count = take(len(indices))
        taken.extend(indices[i] for i in order[:count])
        rest.extend(indices[i] for i in order[count:])
    return sorted(rest), sorted(taken)


def _held_count(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, round(fraction * n)), n - 1)
