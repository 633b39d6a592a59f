"""Measured training memory of one step, split into what holds it.

- activations: every tensor autograd saves for backward during the forward pass, found with
  `torch.autograd.graph.saved_tensors_hooks` and counted once per storage (views and tensors
  saved twice count once), parameters excluded;
- parameters, gradients, optimizer state: the storages of those tensors after the step;
- peak: the most memory the step held at once. On CUDA, the caching allocator's
  `max_memory_allocated` over the step. On CPU, the highest point of the PyTorch profiler's
  memory timeline of the step, which counts the tensors alive before the step that the step
  uses (as pre-existing) and those it allocates; plus any tensor alive before the step
  (parameters, buffers, optimizer state, the batch) that the step never touched, so that
  nothing is counted twice.
All in bytes, float32, one warmed-up step (the optimizer state exists).
"""

from __future__ import annotations

import weakref

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ftlab.efficient import int8_bytes, int8_tensors


@dataclass(frozen=True)
class MeasuredMemory:
    activations: int
    parameters: int
    gradients: int
    optimizer: int
    peak: int | None
    peak_method: str
    frozen_weights: int = 0
    """The frozen parameters as stored: fp32 (or int8 weights and their scales)."""


def unique_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def saved_activation_bytes(forward: Callable[[], torch.Tensor], model: nn.Module
                           ) -> tuple[torch.Tensor, int]:
    """Run `forward` and count what autograd saves for backward (parameters excluded):
    each storage once, and only while something still holds it when `forward` returns. A
    tensor saved by a part of the graph that the forward discarded (a weight norm computed
    and then detached, as DoRA does) is freed with that part, and its address may be
    reused by a later tensor: counting addresses alone would count it too, by chance."""
    parameters = {p.untyped_storage().data_ptr()
                  for p in (*model.parameters(), *int8_tensors(model))}  # int8 weights too
    saved: dict[int, list[tuple[int, weakref.ref]]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.device.type != "meta":
            saved.setdefault(storage.data_ptr(), []).append((storage.nbytes(),
                                                             weakref.ref(tensor)))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = forward()
    alive = [max(size for size, ref in refs if ref() is not None)
             for refs in saved.values() if any(ref() is not None for _, ref in refs)]
    return output, sum(alive)


def measure_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, loss_fn: Callable[..., torch.Tensor] | None = None
                 ) -> MeasuredMemory:
    """Warm up with one step, then measure the next."""
    loss_fn = loss_fn or nn.functional.cross_entropy

    def step(count_activations: bool) -> int:
        optimizer.zero_grad(set_to_none=True)
        if count_activations:
            logits, activations = saved_activation_bytes(lambda: model(images), model)
        else:
            logits, activations = model(images), 0
        loss_fn(logits, labels).backward()
        gradients[0] = unique_bytes(p.grad for p in model.parameters() if p.grad is not None)
        optimizer.step()
        return activations

    gradients = [0]
    step(count_activations=False)
    optimizer.zero_grad(set_to_none=True)
    if images.device.type == "cuda":
        peak, method, activations = _cuda_peak(lambda: step(True), images.device)
    else:
        persistent = _persistent_bytes(model, optimizer, images, labels)
        (step_peak, seen_before), activations = _cpu_step_peak(lambda: step(True))
        peak = None if step_peak is None else step_peak + max(0, persistent - seen_before)
        method = ("cpu: profiler memory-timeline peak of the step (tensors alive before it "
                  "included once)")
    return MeasuredMemory(
        activations=activations,
        parameters=unique_bytes(model.parameters()),
        gradients=gradients[0],
        optimizer=unique_bytes(t for s in optimizer.state.values() for t in s.values()
                               if isinstance(t, torch.Tensor) and t.dim() > 0),
        peak=peak, peak_method=method,
        frozen_weights=unique_bytes(p for p in model.parameters() if not p.requires_grad)
        + int8_bytes(model))


def _persistent_bytes(model: nn.Module, optimizer: torch.optim.Optimizer,
                      *batch: torch.Tensor) -> int:
    state = [t for s in optimizer.state.values() for t in s.values()
             if isinstance(t, torch.Tensor)]
    return unique_bytes([*model.parameters(), *model.buffers(), *state, *batch])


def _cuda_peak(run: Callable[[], int], device: torch.device) -> tuple[int, str, int]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    activations = run()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device),
            "cuda: caching-allocator max_memory_allocated over the step", activations)


def _cpu_step_peak(run: Callable[[], int]) -> tuple[tuple[int | None, int], int]:
    """((highest total of the timeline, bytes it counts as alive before the step),
    activations) via the profiler. The timeline counts a tensor allocated before profiling
    began as pre-existing from the first instant: the parameters, optimizer state and batch
    the step uses are in its total already (adding them again counted them twice)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU],
                                         profile_memory=True, record_shapes=True,
                                         with_stack=True) as profiler:
        activations = run()
    try:  # a private API: if a torch release moves it, measure without a peak
        from torch.profiler._memory_profiler import Action, MemoryProfileTimeline

        timeline = MemoryProfileTimeline(profiler._memory_profile())
        _, sizes = timeline._coalesce_timeline(torch.device("cpu"))
        before = sum(size for _, action, (key, _), size in timeline.timeline
                     if action == Action.PREEXISTING and key.device.type == "cpu")
    except (ImportError, AttributeError, RuntimeError, TypeError, ValueError):
        return (None, 0), activations
    return ((max(sum(row) for row in sizes) if sizes else 0), before), activations


def step_peak(run: Callable[[], object], persistent: Iterable[torch.Tensor],
              device: torch.device) -> tuple[int | None, str]:
    """(Peak bytes of one call of `run`, how it was measured), quickly enough to search with.

    On CUDA, the allocator's `max_memory_allocated`. On CPU, the profiler's allocation events
    only (no shapes, stacks or memory categories, whose analysis takes seconds per step): the
    most bytes the step's own allocations held at once, plus `persistent`, the tensors alive
    before it (parameters, buffers, optimizer state, the batch). That is the timeline peak
    of `measure_step` whenever the step frees none of the tensors alive before it, which a
    training step after `zero_grad(set_to_none=True)` does not; a test holds the two equal.
    Where a torch release moved the events' fields, the step is measured the slow way."""
    if device.type == "cuda":
        peak, method, _ = _cuda_peak(lambda: (run(), 0)[1], device)
        return peak, method
    from torch.profiler import ProfilerActivity, profile

    held = unique_bytes(persistent)
    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU],
                                         profile_memory=True) as profiler:
        run()
    try:  # experimental_event_tree and its allocation fields are not a public API
        events = _allocation_events(profiler.profiler.kineto_results.experimental_event_tree())
    except (AttributeError, RuntimeError, TypeError):
        (peak, seen_before), _ = _cpu_step_peak(lambda: (run(), 0)[1])
        return (None if peak is None else peak + max(0, held - seen_before),
                "cpu: profiler memory-timeline peak of the step")
    running = most = 0
    for _, size in sorted(events):
        running += size
        most = max(most, running)
    return held + most, ("cpu: profiler allocation events of the step, plus the tensors "
                         "alive before it")


def _allocation_events(roots: list) -> list[tuple[int, int]]:
    """(time, signed bytes) of every CPU allocation and free under `roots`."""
    found, stack = [], list(roots)
    while stack:
        node = stack.pop()
        fields = node.extra_fields
        if hasattr(fields, "alloc_size") and fields.device.type == "cpu":
            found.append((node.start_time_ns, int(fields.alloc_size)))
        stack.extend(node.children)
    return found


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the profiler's native start/stop lines (written by C++ straight to fd 2);
    Python errors still raise as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
