"""Memory-efficient execution: keep for backward only what backward needs.

`apply_memory_plan(model)` transforms a model prepared by a strategy in place (module
classes only; parameters, buffers and state_dict keys are untouched) and
`remove_memory_plan(model)` undoes it. Gradients equal stock autograd's: each rewrite is a
named rule (`RULES`), checked against stock autograd once per process and device type
before first use (`self_check`); a rule that fails is switched off with a warning.
"""

from ftlab.efficient.apply import apply_memory_plan
from ftlab.efficient.gates import gated_activation
from ftlab.efficient.int8 import int8_bytes, int8_tensors, quantize_frozen_weights
from ftlab.efficient.plan import MemoryPlan, plan_model, planned_modules, remove_memory_plan
from ftlab.efficient.rules import RULES, Rule
from ftlab.efficient.selfcheck import Verdict, checked_rules, self_check
from ftlab.efficient.wiring import Wiring, observe_wiring

__all__ = ["RULES", "MemoryPlan", "Rule", "Verdict", "Wiring", "apply_memory_plan",
           "checked_rules", "gated_activation", "int8_bytes", "int8_tensors",
           "observe_wiring", "plan_model",
           "planned_modules", "quantize_frozen_weights", "remove_memory_plan", "self_check"]
