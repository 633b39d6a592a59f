"""A block's output that training layers read (LoRA's first layers beside frozen convs, in
the next block) is not kept for them: they keep the block's input instead, which the
block's own training layers keep anyway, and run the block forward again in backward to get
it back, within the recompute budget (`recompute.py`).

In a ResNet under LoRA every conv's adapter keeps the conv's input; a bottleneck's output
(4x its inner width) is the largest of them. Rebuilding it costs the block's forward
multiply-adds once more, and the early, wide, high-resolution blocks free the most bytes
per multiply-add, so they come first. The block runs its own code on the same tensor
(`recompute.NormRebuild`), hence the same output bit for bit, provided it draws no random
numbers and updates no state: blocks with a BatchNorm normalising with batch statistics
(it would update its running statistics twice) or an active dropout or drop-path are left
alone. Two adjacent blocks are not both rebuilt: the second's input would be the first's
rebuilt output, kept after all.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ftlab.efficient.gates import (
    RecomputedInputConv2d,
    RecomputedInputConvFunction,
    RecomputedInputLinear,
)
from ftlab.efficient.recompute import RECOMPUTE_BUDGET
from ftlab.efficient.rules.base import Rule, Site, conv, head, passes_on, swap, trainable
from ftlab.efficient.rules.frozen_conv import frozen_conv
from ftlab.efficient.rules.frozen_linear import frozen_linear
from ftlab.efficient.rules.kept_input import training_conv
from ftlab.efficient.tags import REBUILD_FROM, TAG_HOOK, tag_norm_outputs


class _Adapted(nn.Module):
    """A frozen conv beside a trained low-rank side path (LoRA's shape), a frozen eval-mode
    BatchNorm, a ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.base = conv(channels, channels, weight=False)
        self.down = conv(channels, 2)
        self.up = nn.Conv2d(2, channels, 1)
        self.norm = trainable(nn.BatchNorm2d(channels), weight=False).eval()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.base(x) + self.up(self.down(x))))


class _Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv(3, 4)
        self.blocks = nn.Sequential(_Adapted(4), _Adapted(4), _Adapted(4))
        self.head = nn.Sequential(*head(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def training_layer(module: nn.Module) -> bool:
    return training_conv(module) or (type(module) is nn.Linear and module.weight.requires_grad)


def stateless(block: nn.Module) -> bool:
    """Whether running `block` again gives the same output and changes nothing: no
    BatchNorm with batch statistics, no active dropout or drop-path."""
    for module in block.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            return False
        if module.training and (isinstance(module, nn.Dropout) and module.p > 0
                                or getattr(module, "drop_prob", 0) > 0):
            return False
    return True


class BlockRebuild(Rule):
    name = "block_rebuild"
    summary = ("training layers reading a block's output rebuild it from the block's input "
               "in backward")
    engages = (RecomputedInputConvFunction,)
    requires = ("kept_input",)
    keeps = (REBUILD_FROM, TAG_HOOK)

    def pattern(self) -> nn.Module:
        return _Chain()

    def prepare(self, site: Site) -> dict[str, nn.Module]:
        """reader name -> the block whose output it rebuilds, for the blocks chosen: those
        freeing the most bytes per multiply-add first (within a factor of two, the earlier
        block first, so that a stage of equal blocks rebuilds every other one), while
        their multiply-adds fit what the budget leaves."""
        wiring, modules = site.wiring, site.modules
        candidates = []
        for name, seen in wiring.blocks.items():
            inside = name + "."  # an in-place op of the block's own reads its output object
            readers = self._readers([r for r in wiring.tensor_readers.get(seen.output, [])
                                     if not r.startswith(inside)], site)
            kept_in = any(training_layer(modules[r])
                          for r in wiring.tensor_readers.get(seen.input, []))
            if readers and kept_in and stateless(modules[name]):
                macs = sum(m for leaf, (_, m) in wiring.sizes.items()
                           if leaf.startswith(name + "."))
                rank = -math.floor(math.log2(seen.elements / max(macs, 1)))
                candidates.append((rank, len(candidates), macs, name, readers))
        budget = (RECOMPUTE_BUDGET if site.recompute_budget is None else site.recompute_budget
                  ) * sum(m for _, m in wiring.sizes.values()) - _spent(site)
        chosen: dict[str, nn.Module] = {}
        rebuilt, kept = set(), set()
        for _, _, macs, name, readers in sorted(candidates, key=lambda c: c[:2]):
            seen = wiring.blocks[name]
            if macs > budget or seen.output in rebuilt | kept or seen.input in rebuilt:
                continue
            budget -= macs
            rebuilt.add(seen.output)
            kept.add(seen.input)
            chosen.update(dict.fromkeys(readers, modules[name]))
        return chosen

    @staticmethod
    def _readers(names: list[str], site: Site) -> list[str]:
        """The training layers among `names` (the leaves reading a block's output), if every
        other one keeps nothing of it; else none."""
        modules = site.modules
        if not names or not all(training_layer(modules[n]) or frozen_conv(modules[n])
                                or frozen_linear(modules[n]) or passes_on(modules[n])
                                for n in names):
            return []
        return [n for n in names if training_layer(modules[n])]

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        block = site.prepared[self.name].get(name)
        if block is None:
            return None
        swap(module, RecomputedInputConv2d if isinstance(module, nn.Conv2d)
             else RecomputedInputLinear)
        module.__dict__[REBUILD_FROM] = [block]
        tag_norm_outputs(block)
        return ("rebuilt_blocks",)


def _spent(site: Site) -> int:
    """Multiply-adds the MLP rebuilds (`recompute_mlp`) already take from the budget."""
    chosen: Any = site.prepared.get("recompute_mlp") or {}
    names = {id(module): name for name, module in site.modules.items()}
    return sum(site.wiring.sizes.get(names.get(id(layer), ""), (0, 0))[1]
               for _, layer in chosen.values())


RULE = BlockRebuild()
