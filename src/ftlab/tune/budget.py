"""tune.memory_budget: each trial's training step measured before the trial trains.

A trial's step memory depends on its architecture, strategy and options, batch size,
resolution, classes, optimizer and execution, never on its learning rate or weight decay:
trials that differ only in those share one measurement, so a search over rates measures its
step once. The step is measured as `ftlab plan` measures one (`ftlab.memory.probe`), in
float32 (a run under autocast holds less: the check errs on the side of fitting).
"""

from __future__ import annotations

from collections.abc import Sequence

from ftlab.config import load_config
from ftlab.memory.probe import dataset_classes, experiment_spec, experiment_step_peak
from ftlab.runtime import resolve_device


class BudgetCheck:
    """Measured step peaks of one worker's trials, each distinct step measured once."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}

    def peak(self, overrides: Sequence[str], base: str | None) -> int:
        """The peak bytes of the training step of the run `overrides` describe."""
        config = load_config(base, list(overrides))
        classes = dataset_classes(config.data)
        spec = experiment_spec(config, classes)
        key = repr((spec.arch, spec.strategy, classes, spec.resolution, spec.optim.name,
                    spec.optim.options, spec.execution, spec.epochs, spec.frozen_weights,
                    config.train.batch_size,
                    config.train.device))
        if key not in self.peaks:
            self.peaks[key] = experiment_step_peak(config, classes,
                                                   resolve_device(config.train.device))
        return self.peaks[key]
