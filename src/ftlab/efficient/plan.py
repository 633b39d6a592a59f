"""Decide, per module, how to run it so that backward keeps only what it needs.

The plan depends on what trains and which norm layers keep their statistics, so it is made
after the strategy has set `requires_grad` and train/eval modes (every epoch: gradual
unfreezing changes both), and it is undone and redone rather than patched.

Each rewrite is a rule object in its own file (`rules/`: what it matches, the class it
swaps in, what it leaves on the module, what it counts, and its pattern for the
self-check). The plan observes the wiring (`wiring.py`), lets the rules look at the whole
model first (`Rule.prepare`), then offers every module to the rules in `PLAN_ORDER`: the
first that matches rewrites it. `plan_model` applies only the rules it is given (and of
those, only the ones whose required rules are given too), so the self-check can switch
one off.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, fields

from torch import nn

from ftlab.efficient.rules import PLAN_ORDER, RULES, Site, planned, restore
from ftlab.efficient.wiring import observe_wiring


@dataclass(frozen=True)
class MemoryPlan:
    """What a plan changed, for logs and tests."""

    frozen_convs: int = 0
    folded_norms: int = 0
    frozen_linears: int = 0
    masked_activations: int = 0
    shared_activations: int = 0
    rebuilt_activations: int = 0
    pools: int = 0
    gates: int = 0
    recomputed: int = 0
    frozen_norms: int = 0
    rebuilt_inputs: int = 0
    rebuilt_blocks: int = 0

    def describe(self) -> str:
        gates = (f", {self.gates} squeeze-excitation gates keep their activation's input "
                 "instead of its output") if self.gates else ""
        if self.recomputed:
            gates += (f", {self.recomputed} MLP activations rebuild their input from their "
                      "norm's in backward")
        if self.frozen_norms:
            gates += (f", {self.frozen_norms} frozen BatchNorms no conv absorbs keep only "
                      "their scale")
        if self.rebuilt_inputs:
            gates += (f", {self.rebuilt_inputs} training linears rebuild their input from "
                      "the LayerNorm they read")
        if self.rebuilt_blocks:
            gates += (f", {self.rebuilt_blocks} training layers rebuild the block output "
                      "they read from the block's input")
        return (f"{self.frozen_convs} frozen convs keep no input ({self.folded_norms} with their "
                f"BatchNorm folded in), {self.frozen_linears} frozen linears, "
                f"{self.masked_activations} ReLUs keep 1-bit masks and "
                f"{self.shared_activations} share their output, "
                f"{self.rebuilt_activations} rebuild their input from a training BatchNorm's, "
                f"{self.pools} average pools "
                f"keep only shapes{gates}")


def plan_model(model: nn.Module, rules: Collection[str], probe_size: int = 64,
               recompute_budget: float | None = None) -> MemoryPlan:
    """Re-plan `model` for its current trainable set and modes with the rules named in
    `rules` (`rules.RULES`; the self-checked entry point is `apply_memory_plan`); returns
    what changed. `recompute_budget` overrides `recompute.RECOMPUTE_BUDGET`."""
    remove_memory_plan(model)
    active = [r for r in PLAN_ORDER if r.name in rules and set(r.requires) <= set(rules)]
    site = Site(observe_wiring(model, probe_size), dict(model.named_modules()),
                {r.name for r in active}, recompute_budget)
    for rule in active:
        site.prepared[rule.name] = rule.prepare(site)
    counts = dict.fromkeys((f.name for f in fields(MemoryPlan)), 0)
    for name, module in site.modules.items():
        if planned(module):  # rewritten with another module (a folded norm)
            continue
        for rule in active:
            counted = rule.install(name, module, site)
            if counted is not None:
                for field in counted:
                    counts[field] += 1
                break
    return MemoryPlan(**counts)


def remove_memory_plan(model: nn.Module) -> None:
    """Give every planned module back its original class and drop what the rules left."""
    for module in model.modules():
        restore(module)
        for rule in RULES.values():
            rule.undo(module)


def planned_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    return ((n, m) for n, m in model.named_modules() if planned(m))
