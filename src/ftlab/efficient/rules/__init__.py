"""The rewrites memory-efficient execution makes, one file per rule (see `base.Rule`).

`RULES` is the order the self-check tries them in (a rule after those it requires: its
pattern is planned with them on); `PLAN_ORDER` the order the plan tries them on a module
(a rule before those it builds on: it matches a narrower pattern of the same modules, a
frozen conv with a foldable norm before any frozen conv). The rules use public autograd
API only (custom functions, their nodes' `saved_tensors`, `grad_fn` identity, module
forward hooks), but they depend on what torch's ops keep and how its graphs are shaped,
which a torch release can change without an error: so every rule is checked against stock
autograd before first use in a process (`selfcheck.py`).
"""

from __future__ import annotations

from ftlab.efficient.rules import (
    block_rebuild,
    fold_norm,
    frozen_conv,
    frozen_linear,
    frozen_norm,
    kept_input,
    max_pool,
    norm_input,
    partial_update,
    pools,
    recompute_mlp,
    relu,
    relu_rebuild,
    squeeze_excite,
    zero_dropout,
)
from ftlab.efficient.rules.base import PATTERN_SIZE, Rule, Site, planned, restore

RULES: dict[str, Rule] = {module.RULE.name: module.RULE for module in [
    frozen_conv, fold_norm, frozen_linear, frozen_norm, relu, relu_rebuild, pools, max_pool,
    zero_dropout, kept_input, norm_input, squeeze_excite, recompute_mlp, block_rebuild,
    partial_update]}
"""Every rule, in the order the self-check tries them (a rule after those it requires)."""


def _depth(rule: Rule) -> int:
    return 1 + max((_depth(RULES[r]) for r in rule.requires), default=-1)


PLAN_ORDER: tuple[Rule, ...] = tuple(sorted(RULES.values(), key=lambda r: -_depth(r)))
"""The rules as the plan tries them on each module: those that build on others first."""

__all__ = ["PATTERN_SIZE", "PLAN_ORDER", "RULES", "Rule", "Site", "planned", "restore"]
