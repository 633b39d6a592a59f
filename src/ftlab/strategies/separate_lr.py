"""Separate learning rates per parameter group: smaller steps for the generic lower layers.

The `reference` preset is the reference report's definition: classifier x1.0, the last five
feature modules x0.6, every other parameter x0.4. Its code built the middle group from the
*modules'* ids (`map(id, model.features[-5:])`), which no parameter matches, so the group was
empty and those five modules trained at x0.4 too; `reference_as_run` reproduces that.
"""

from __future__ import annotations

import re

from ftlab.config.schema import LrRule
from ftlab.errors import ConfigError
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy

PRESETS: dict[str, tuple[LrRule, ...]] = {
    "reference": (LrRule(head=True, multiplier=1.0), LrRule(blocks=(-5, -1), multiplier=0.6),
                  LrRule(pattern=".", multiplier=0.4)),
    "reference_as_run": (LrRule(head=True, multiplier=1.0), LrRule(pattern=".", multiplier=0.4)),
}


@register_strategy
class SeparateLr(Strategy):
    """Every parameter trains, at optim.lr x the multiplier of the first rule that selects
    it: `strategy.lr_rules` first, then the preset's, else `strategy.default_multiplier`. A
    rule selects the head, a range of backbone blocks, or names matching a regex; a
    multiplier of 0 freezes what it selects."""

    name = "separate_lr"
    summary = "every layer trains, lr scaled per group (preset: the reference report's)"
    options = ("preset", "lr_rules", "default_multiplier")

    def __init__(self, config) -> None:
        super().__init__(config)
        if config.preset is not None and config.preset not in PRESETS:
            raise ConfigError(f"strategy.preset={config.preset!r} is unknown; choose one of: "
                              f"{', '.join(sorted(PRESETS))}, or null to use only lr_rules")
        self.rules = tuple(config.lr_rules) + PRESETS.get(config.preset or "", ())
        self.patterns = [re.compile(r.pattern) if r.pattern is not None else None
                         for r in self.rules]

    def lr_multiplier(self, param: ParamInfo) -> float:
        for rule, pattern in zip(self.rules, self.patterns):
            if _selects(rule, pattern, param):
                return rule.multiplier
        return self.config.default_multiplier

    def is_trainable(self, param: ParamInfo) -> bool:
        return self.lr_multiplier(param) > 0


def _selects(rule: LrRule, pattern: re.Pattern | None, param: ParamInfo) -> bool:
    if rule.head:
        return param.is_head
    if rule.blocks is not None:
        first, last = (b + param.num_blocks if b < 0 else b for b in rule.blocks)
        return not param.is_head and first <= param.block <= last
    return pattern is not None and pattern.search(param.name) is not None
