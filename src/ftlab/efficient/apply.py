"""The entry point: plan a model with the rules that passed this process's self-check."""

from __future__ import annotations

from collections.abc import Collection

from torch import nn

from ftlab.efficient.plan import MemoryPlan, plan_model
from ftlab.efficient.selfcheck import checked_rules


def apply_memory_plan(model: nn.Module, probe_size: int = 64,
                      rules: Collection[str] | None = None) -> MemoryPlan:
    """Re-plan `model` for its current trainable set and modes; returns what changed.

    `rules`: the rules to apply (names in `rules.RULES`); by default those that passed the
    self-check on the device of the model's parameters (`selfcheck.checked_rules`).
    """
    if rules is None:
        parameter = next(model.parameters(), None)
        rules = checked_rules(parameter.device if parameter is not None else "cpu")
    return plan_model(model, rules, probe_size)
