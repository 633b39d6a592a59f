"""Memory-efficient execution: keep for backward only what backward needs.

`apply_memory_plan(model)` transforms a model prepared by a strategy in place (module
classes only; parameters, buffers and state_dict keys are untouched) and
`remove_memory_plan(model)` undoes it. Gradients equal stock autograd's.
"""

from ftlab.efficient.gates import gated_activation
from ftlab.efficient.plan import (
    MemoryPlan,
    Wiring,
    apply_memory_plan,
    observe_wiring,
    planned_modules,
    remove_memory_plan,
)

__all__ = ["MemoryPlan", "Wiring", "apply_memory_plan", "gated_activation", "observe_wiring",
           "planned_modules", "remove_memory_plan"]
