"""Whether a training step can fit in memory, estimated before anything is allocated.

A batch far past the device's free memory otherwise ends in an allocator error with a
traceback, or in the kernel's OOM killer, after the data and the model were loaded. The
estimate is stock full fine-tuning's: about every leaf layer's input kept for backward
(4 bytes an element), plus parameters, gradients and Adam's two moments (16 bytes a
parameter). It is probed at no more than `PROBE_SIZE` px and scaled by the area, so an
absurd resolution is refused without running it.
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.errors import ConfigError
from ftlab.models.probe import leaf_input_elements
from ftlab.runtime import free_memory

PROBE_SIZE = 224
MEASURE_SHARE = 0.9
"""A stock step that is measured (`ftlab memory`, `ftlab arch`) must fit in this share of
the free memory."""
TRAIN_FACTOR = 5.0
"""A training step is refused only when its stock estimate exceeds this many times the free
memory: memory-efficient execution of a frozen backbone keeps about a fifth of stock's
(BENCHMARKS.md), so a step past that cannot fit under any strategy."""


def stock_step_bytes(model: nn.Module, batch_size: int, resolution: int) -> int:
    """About what a step of stock full fine-tuning of `model` keeps (see the module)."""
    probe = min(resolution, PROBE_SIZE)
    per_image = 4 * leaf_input_elements(model, probe) * (resolution / probe) ** 2
    return int(batch_size * per_image + 16 * sum(p.numel() for p in model.parameters()))


def check_step_fits(model: nn.Module, batch_size: int, resolution: int,
                    device: str | torch.device, *, what: str, fix: str,
                    share: float = MEASURE_SHARE) -> None:
    """Refuse, in one line, a step whose estimate exceeds `share` of `device`'s free memory.

    Args:
        what: The step, for the message ("measuring mobilenet_v2 at batch 8 and 224 px").
        fix: What to change ("use smaller --batch-sizes or --resolution").
    """
    free = free_memory(device)
    if free is None:
        return
    need = stock_step_bytes(model, batch_size, resolution)
    if need <= share * free:
        return
    limit = "the" if share <= 1 else f"{share:g} times the"
    why = "" if share <= 1 else " (memory-efficient execution keeps a fifth of it at best)"
    raise ConfigError(f"{what} needs about {need / 2**30:,.1f} GiB under stock autograd, more "
                      f"than {limit} {free / 2**30:,.1f} GiB free on {torch.device(device)}"
                      f"{why}; {fix}")
