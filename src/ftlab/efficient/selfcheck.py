"""Check each rule against stock autograd before first use, and switch off what fails.

Memory-efficient execution relies on what torch's ops keep for backward, which kernels
they run and how their graphs are shaped (all through public API, but none of it promised
to stay). A torch release can change any of it without an error, and the lock's torch is
not the GPU machine's. So, once per
process, torch version and device type, each rule (`rules.RULES`) runs one step of a tiny
model of its pattern under stock autograd and under the plan, and the gradients of every
trained parameter are compared: float64 on the CPU (equal to round-off), float32 with TF32
off on CUDA (within twice stock float32's own error from a float64 reference). A rule whose
gradients differ, whose pattern is not recognised (a function it should have run is missing
from the graph), or which raises, is switched off with one warning naming it, the reason
and the torch version; training goes on under stock autograd for that pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging

import torch
from torch import nn

from ftlab.efficient.owned import OWNER
from ftlab.efficient.plan import planned_modules, plan_model, remove_memory_plan
from ftlab.efficient.rules import PATTERN_SIZE, RULES, Rule

log = logging.getLogger(__name__)

FLOAT64_TOLERANCE = 1e-10
"""Largest gradient difference on the CPU, as a share of the largest gradient: float64
round-off of these tiny models is ~1e-16."""


@dataclass(frozen=True)
class Verdict:
    """One rule's self-check."""

    rule: str
    passed: bool
    reason: str = ""


_CHECKED: dict[tuple[str, str], dict[str, Verdict]] = {}


def checked_rules(device: torch.device | str = "cpu") -> frozenset[str]:
    """The rules to apply on `device`'s type with this torch: those that passed the
    self-check (run once per process and device type, then cached), and those whose
    pattern's library is not loaded yet, which nothing can match (checked once it is)."""
    verdicts = self_check(device)
    return frozenset(name for name in RULES if name not in verdicts or verdicts[name].passed)


def self_check(device: torch.device | str = "cpu") -> dict[str, Verdict]:
    """The verdicts of the rules checked so far on `device`'s type, checking the others
    first; a failure is logged once, as a warning."""
    kind = torch.device(device).type
    verdicts = _CHECKED.setdefault((torch.__version__, kind), {})
    for rule in RULES.values():
        if rule.name in verdicts:
            continue
        verdict = _check_in_order(rule, verdicts, torch.device(kind))
        if verdict is None:
            continue
        verdicts[rule.name] = verdict
        if not verdict.passed:
            log.warning("memory-efficient execution: rule %s is off with torch %s on %s "
                        "(%s); that pattern runs under stock autograd", rule.name,
                        torch.__version__, kind, verdict.reason)
    return dict(verdicts)


def _check_in_order(rule: Rule, verdicts: dict[str, Verdict], device: torch.device
                    ) -> Verdict | None:
    """`rule` checked with every rule before it that is on; off if one it requires is."""
    off = [r for r in rule.requires if r in verdicts and not verdicts[r].passed]
    if off:
        return Verdict(rule.name, False, f"it needs rule {off[0]}")
    before = list(RULES)[:list(RULES).index(rule.name)]
    return check_rule(rule, {r for r in before if r not in verdicts or verdicts[r].passed},
                      device)


def check_rule(rule: Rule, others: set[str], device: torch.device) -> Verdict | None:
    """`rule`'s verdict: its pattern planned with it and the rules in `others`; None while
    the pattern's library is not loaded."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is untouched
        torch.manual_seed(0)
        model = rule.pattern()
    if model is None:
        return None
    try:
        return _compare(rule, model, others | {rule.name}, device)
    except Exception as error:  # a changed op or API surfaces as any error: switch off, go on
        return Verdict(rule.name, False, f"{type(error).__name__}: {error}")
    finally:
        remove_memory_plan(model)


def _compare(rule: Rule, model: nn.Module, rules: set[str], device: torch.device) -> Verdict:
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    model.to(device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, PATTERN_SIZE, PATTERN_SIZE, generator=generator)
    weights = torch.randn(2, 3, generator=generator)
    with _no_tf32(device):
        stock, _ = _gradients(model, x, weights, dtype)
        reference = _float64_reference(model, x, weights) if dtype != torch.float64 else stock
        plan_model(model, rules, probe_size=PATTERN_SIZE, recompute_budget=1.0)
        efficient, functions = _gradients(model, x, weights, dtype)
    missing = [f.__name__ for f in rule.engages if f not in functions]
    swapped = {type(m) for _, m in planned_modules(model)}
    missing += [c.__name__ for c in rule.swaps if c not in swapped]
    if missing:
        return Verdict(rule.name, False, f"its pattern was not recognised: no {missing[0]}")
    scale = max(g.abs().max().item() for g in reference.values())
    error = max((efficient[n] - reference[n]).abs().max().item() for n in reference)
    allowed = FLOAT64_TOLERANCE * scale if dtype == torch.float64 else 2 * max(
        (stock[n] - reference[n]).abs().max().item() for n in reference) + 1e-7 * scale
    if error > allowed:
        return Verdict(rule.name, False, f"gradients differ from stock autograd's by "
                       f"{error:.2g} (allowed {allowed:.2g})")
    return Verdict(rule.name, True)


def _gradients(model: nn.Module, x: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype
               ) -> tuple[dict[str, torch.Tensor], set[type]]:
    """Trained parameters' gradients of one step, and the owned functions its graph ran."""
    parameter = next(model.parameters())
    model.zero_grad(set_to_none=True)
    out = model(x.to(parameter.device, dtype))
    functions = _owned_functions(out.grad_fn)
    (out * weights.to(out.device, dtype)).sum().backward()
    grads = {n: p.grad.detach().double().cpu() for n, p in model.named_parameters()
             if p.grad is not None}
    if not grads:
        raise RuntimeError("the pattern has no trained parameter")
    return grads, functions


def _float64_reference(model: nn.Module, x: torch.Tensor, weights: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
    model.double()
    try:
        return _gradients(model, x, weights, torch.float64)[0]
    finally:
        model.float()


def _owned_functions(root: object) -> set[type]:
    """The owned functions whose nodes are in the graph below `root` (public `next_functions`
    walk)."""
    seen, found, stack = set(), set(), [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        owner = getattr(node, OWNER, None)
        if owner is not None:
            found.add(owner)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


class _no_tf32:
    """On CUDA, TF32 off for matmuls and cuDNN convolutions while checking (restored after):
    with it on, float32 gradients carry 10-bit mantissas and no tolerance tells a wrong
    gradient from round-off."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> None:
        if self.cuda:
            self.saved = (torch.backends.cuda.matmul.allow_tf32,
                          torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved
