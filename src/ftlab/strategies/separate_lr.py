"""Separate learning rates per parameter group: smaller steps for the generic lower layers.

The `reference` preset is the reference report's definition: classifier x1.0, the last five
feature modules x0.6, every other parameter x0.4. Its code built the middle group from the
*modules'* ids (`map(id, model.features[-5:])`), which no parameter matches, so the group was
empty and those five modules trained at x0.4 too; `reference_as_run` reproduces that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ftlab.config.schema import check_length, check_number, fail
from ftlab.errors import ConfigError
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class LrRule:
    """One rule of `separate_lr`: parameters it selects train at `multiplier` x optim.lr.

    Exactly one selector: `head`, `blocks` or `pattern`. The first matching rule wins.
    """

    multiplier: float = 1.0
    """Factor on optim.lr for the parameters this rule selects (0 freezes them)."""
    head: bool = False
    """Select the new classification head."""
    blocks: Optional[tuple[int, ...]] = None
    """[first, last] backbone block indices, inclusive (`ftlab strategies --model ARCH`
    lists them); negative values count from the last block, so [-5, -1] is the last five."""
    pattern: Optional[str] = None
    """Regular expression searched in parameter names, e.g. '^features\\.1\\.'."""

    def __post_init__(self) -> None:
        check_number("strategy.lr_rules.multiplier", self.multiplier, low=0.0, high=100.0)
        chosen = [self.head, self.blocks is not None, self.pattern is not None]
        if sum(chosen) != 1:
            fail("strategy.lr_rules", {"head": self.head, "blocks": self.blocks,
                                        "pattern": self.pattern},
                  "exactly one of head: true, blocks: [first, last] or pattern: REGEX per rule")
        if self.blocks is not None:
            check_length("strategy.lr_rules.blocks", self.blocks, 2)
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as err:
                fail("strategy.lr_rules.pattern", self.pattern, f"a valid regex ({err})")

PRESETS: dict[str, tuple[LrRule, ...]] = {
    "reference": (LrRule(head=True, multiplier=1.0), LrRule(blocks=(-5, -1), multiplier=0.6),
                  LrRule(pattern=".", multiplier=0.4)),
    "reference_as_run": (LrRule(head=True, multiplier=1.0), LrRule(pattern=".", multiplier=0.4)),
}


@dataclass(frozen=True)
class SeparateLrOptions:
    preset: Optional[str] = "reference"
    """A named rule set (reference, reference_as_run); null uses only lr_rules."""
    lr_rules: list[LrRule] = field(default_factory=list)
    """Rules tried in order before the preset's (so they override it); parameters that no
    rule selects get default_multiplier."""
    default_multiplier: float = 1.0
    """Multiplier of parameters that no rule selects."""

    def __post_init__(self) -> None:
        check_number("strategy.default_multiplier", self.default_multiplier, low=0.0,
                      high=100.0)
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"strategy.preset={self.preset!r} is unknown; choose one of: "
                              f"{', '.join(sorted(PRESETS))}, or null to use only lr_rules")


@register_strategy
class SeparateLr(Strategy):
    """Every parameter trains, at optim.lr x the multiplier of the first rule that selects
    it: `strategy.lr_rules` first, then the preset's, else `strategy.default_multiplier`. A
    rule selects the head, a range of backbone blocks, or names matching a regex; a
    multiplier of 0 freezes what it selects."""

    name = "separate_lr"
    summary = "every layer trains, lr scaled per group (preset: the reference report's)"
    Options = SeparateLrOptions

    def __init__(self, config) -> None:
        super().__init__(config)
        self.rules = tuple(self.options.lr_rules) + PRESETS.get(self.options.preset or "", ())
        self.patterns = [re.compile(r.pattern) if r.pattern is not None else None
                         for r in self.rules]

    def lr_multiplier(self, param: ParamInfo) -> float:
        for rule, pattern in zip(self.rules, self.patterns):
            if _selects(rule, pattern, param):
                return rule.multiplier
        return self.options.default_multiplier

    def is_trainable(self, param: ParamInfo) -> bool:
        return self.lr_multiplier(param) > 0


def _selects(rule: LrRule, pattern: re.Pattern | None, param: ParamInfo) -> bool:
    if rule.head:
        return param.is_head
    if rule.blocks is not None:
        first, last = (b + param.num_blocks if b < 0 else b for b in rule.blocks)
        return not param.is_head and first <= param.block <= last
    return pattern is not None and pattern.search(param.name) is not None
