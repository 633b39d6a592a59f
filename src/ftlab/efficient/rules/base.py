"""What a rule is, and what every rule's plan reads (`Site`).

A rule is one rewrite of the memory plan, whole in one file: the modules it matches, the
class it swaps them to (and any reference it leaves on them), what it counts in the
`MemoryPlan`, and a tiny model of its pattern for the self-check. The plan tries the rules
on every module, most specific first, and the first that matches rewrites it; undoing a
plan gives each module back its class and drops what the rules left (`Rule.keeps`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ftlab.efficient.wiring import Wiring

PATTERN_SIZE = 8
"""Height and width of the self-check's images (and of the plan's probe for them)."""

ORIGINAL = "_ftlab_original_class"
"""On a planned module: the class it had, given back when the plan is removed."""


@dataclass(frozen=True)
class Site:
    """What a rule sees of the model being planned."""

    wiring: Wiring
    modules: dict[str, nn.Module]
    rules: Collection[str]
    """The rules this plan applies."""
    recompute_budget: float | None = None
    """Overrides `recompute.RECOMPUTE_BUDGET` (the self-check spends without limit)."""
    prepared: dict[str, Any] = field(default_factory=dict)
    """rule name -> what its `prepare` found about the whole model."""


class Rule:
    """One rewrite. Subclasses set the class attributes and implement `install`; one
    instance per rule sits in `rules.RULES`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    """What it saves, for warnings and docs."""
    engages: ClassVar[tuple[type[torch.autograd.Function], ...]] = ()
    """Owned functions that the pattern's efficient forward must contain: one that is
    missing means the rule did not recognise its pattern (an internal it reads changed)."""
    swaps: ClassVar[tuple[type[nn.Module], ...]] = ()
    """Module classes the plan must have installed in the pattern."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Rules it builds on; it is off when one of them is, and tried before them."""
    keeps: ClassVar[tuple[str, ...]] = ()
    """The `__dict__` keys it sets on planned modules (plain attributes: no state_dict
    entry, no child module), dropped when the plan is removed; a hook's handle kept under
    one is removed with it."""

    def pattern(self) -> nn.Module | None:
        """A tiny model in which the rule applies, trainable set and modes set as a strategy
        would; None while the pattern's library is not loaded (then nothing can match)."""
        raise NotImplementedError

    def prepare(self, site: Site) -> Any:
        """What the rule must know about the whole model before any module is rewritten
        (stored in `site.prepared[name]`); nothing by default."""
        return None

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        """Rewrite `module` if the rule matches it; returns the `MemoryPlan` fields it adds
        one to (possibly none), or None where it does not match."""
        raise NotImplementedError

    def undo(self, module: nn.Module) -> None:
        for key in self.keeps:
            kept = module.__dict__.pop(key, None)
            if isinstance(kept, RemovableHandle):
                kept.remove()


class SwapRule(Rule):
    """A rule that gives each module it matches one class and counts it once (or not at
    all): subclasses set `target` and `counted` and implement `matches`."""

    target: ClassVar[type[nn.Module]]
    counted: ClassVar[tuple[str, ...]] = ()

    def matches(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if not self.matches(module):
            return None
        swap(module, self.target)
        return self.counted


def swap(module: nn.Module, cls: type[nn.Module]) -> None:
    """Give `module` the class `cls` (a subclass that runs the same parameters and buffers
    another way), remembering the one it had."""
    module.__dict__[ORIGINAL] = type(module)
    module.__class__ = cls


def restore(module: nn.Module) -> None:
    original = module.__dict__.pop(ORIGINAL, None)
    if original is not None:
        module.__class__ = original


def passes_on(module: nn.Module) -> bool:
    """A module that returns its input tensor itself (an identity, a dropout at p = 0, as
    peft's `lora_dropout`): what reads its output reads its input."""
    return type(module) is nn.Identity or (isinstance(module, nn.Dropout) and module.p == 0)


def planned(module: nn.Module) -> bool:
    return ORIGINAL in module.__dict__


def trainable(module: nn.Module, weight: bool = True, bias: bool = True) -> nn.Module:
    """`module` with its weights and biases trained or frozen, as a strategy would set them
    (for patterns)."""
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(bias if name.endswith("bias") else weight)
    return module


def conv(cin: int, cout: int, weight: bool = True, groups: int = 1) -> nn.Module:
    """A 3x3 conv for patterns, its weight trained or frozen (its bias trains)."""
    return trainable(nn.Conv2d(cin, cout, 3, padding=1, groups=groups), weight)


def head(channels: int) -> list[nn.Module]:
    """Global pool, flatten and a trained 3-class linear layer: the end of every pattern."""
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 3)]
