"""Training memory per strategy: measured (saved tensors, allocator or profiler peak) and
analytic (TinyTL's per-layer count), for `ftlab memory` and benchmarks/memory.py."""

from ftlab.memory.analytic import AnalyticMemory, analytic_memory, execution_order
from ftlab.memory.measure import MeasuredMemory, measure_step, saved_activation_bytes
from ftlab.memory.report import MemoryRow, measure_row, memory_table, save, to_csv, to_markdown
from ftlab.memory.runs import measure_runs, run_memory

__all__ = [
    "AnalyticMemory",
    "MeasuredMemory",
    "MemoryRow",
    "analytic_memory",
    "execution_order",
    "measure_row",
    "measure_runs",
    "measure_step",
    "memory_table",
    "run_memory",
    "save",
    "saved_activation_bytes",
    "to_csv",
    "to_markdown",
]
