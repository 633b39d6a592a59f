"""One training step as `ftlab train` takes it, measured at any batch size on random data:
what `ftlab plan` searches with and `ftlab tune` checks each trial against its budget by."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from ftlab.assembly import build_optimizer, store_frozen_weights
from ftlab.config import DataConfig, ExperimentConfig, OptimConfig, PlanConfig, StrategyConfig
from ftlab.efficient import apply_memory_plan
from ftlab.errors import ConfigError
from ftlab.memory.measure import step_peak
from ftlab.strategies import prepare_model

WIDEST_STAGE = 10**6
"""The epoch at which a strategy that unfreezes over epochs trains all it ever will."""


class TooFewValues(ConfigError):
    """A training-mode BatchNorm would see one value per channel (batch 1 over a 1x1 map):
    the batch cannot train at that resolution."""


@dataclass(frozen=True)
class StepSpec:
    """Everything a training step's memory depends on, but the batch size."""

    arch: str
    strategy: StrategyConfig
    num_classes: int
    resolution: int
    optim: OptimConfig
    execution: str
    """efficient or stock."""
    epochs: int | None = None
    """The run's length (a strategy that unfreezes over epochs is measured at its last);
    None: the strategy's widest stage."""
    frozen_weights: str = "fp32"
    """fp32 or int8 (efficient execution only; a strategy that trains every weight keeps
    fp32)."""


def plan_spec(config: PlanConfig, strategy: str, execution: str, resolution: int
              ) -> StepSpec:
    options = dict(config.strategy_options.get(strategy, {}))
    return StepSpec(config.arch, StrategyConfig(name=strategy, options=options),
                    config.num_classes, resolution, OptimConfig(name=config.optim), execution,
                    config.epochs, config.frozen_weights)


def experiment_spec(config: ExperimentConfig, num_classes: int) -> StepSpec:
    """The step `ftlab train` takes for `config` (at its last epoch)."""
    return StepSpec(config.model.arch, config.strategy, num_classes, config.data.resolution,
                    config.optim, "efficient" if config.train.memory_efficient else "stock",
                    config.train.epochs, config.train.frozen_weights)


class StepProbe:
    """One strategy prepared as `ftlab train` prepares it (at its widest stage), whose
    training step is measured at any batch size, on random data."""

    def __init__(self, spec: StepSpec, device: torch.device) -> None:
        prepared = prepare_model(spec.arch, None, spec.strategy, spec.num_classes,
                                 spec.resolution, load_weights=False)
        self.strategy, adapter = prepared.strategy, prepared.built.adapter
        self.model = prepared.built.model.to(device)
        self.strategy.begin_epoch(spec.epochs or WIDEST_STAGE, self.model, adapter)
        self.strategy.set_train_mode(self.model)
        if spec.execution == "efficient":
            store_frozen_weights(self.model, self.strategy, adapter, spec.frozen_weights,
                                 quiet=True, required=False)
            apply_memory_plan(self.model)
        self.optimizer = build_optimizer(
            self.strategy.param_groups(self.model, adapter, spec.optim), spec.optim)
        self.trainable = sum(p.numel() for g in self.optimizer.param_groups
                             for p in g["params"] if p.requires_grad)
        self.resolution, self.device, self.classes = spec.resolution, device, spec.num_classes
        self.name, self.execution = spec.strategy.name, spec.execution
        self.method = ""
        self._step(*self._batch(2))  # the optimizer's state exists from here on (2: a
        # training-mode BatchNorm over a 1x1 map needs two images)

    def signature(self) -> tuple:
        """What the step's memory depends on besides batch and resolution: which parameters
        exist and train, which modules are in training mode, what the optimizer holds, and
        whether the loss has a term of the strategy's own. Strategies with equal signatures
        take the same step (full, separate_lr, layer_decay, scratch)."""
        names = {id(p): name for name, p in self.model.named_parameters()}
        return (tuple((name, tuple(p.shape), p.requires_grad)
                      for name, p in self.model.named_parameters()),
                tuple(name for name, _ in self.model.named_buffers()),
                tuple((type(m).__name__, m.training) for m in self.model.modules()),
                sorted(names[id(p)] for g in self.optimizer.param_groups for p in g["params"]),
                self.strategy.penalty(self.model) is None)

    def peak(self, batch_size: int) -> int:
        images, labels = self._batch(batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        state = [t for s in self.optimizer.state.values() for t in s.values()
                 if isinstance(t, torch.Tensor)]
        own = _tensors(self.strategy.state_dict())  # L2-SP's starting weights
        held = [*self.model.parameters(), *self.model.buffers(), *state, *own, images, labels]
        peak, self.method = step_peak(lambda: self._step(images, labels), held, self.device)
        if peak is None:
            raise ConfigError("this torch release's profiler reports no CPU memory timeline; "
                              "plan on --device cuda or with another torch version")
        return peak

    def _batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(size)
        images = torch.randn(size, 3, self.resolution, self.resolution, generator=generator)
        labels = torch.randint(0, self.classes, (size,), generator=generator)
        return images.to(self.device), labels.to(self.device)

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        try:
            loss = torch.nn.functional.cross_entropy(self.model(images), labels)
        except ValueError as err:  # BatchNorm in training mode with one value per channel
            if "more than 1 value per channel" not in str(err):
                raise
            raise TooFewValues(f"{self.strategy.name} at batch {len(images)} and "
                              f"{self.resolution} px leaves a training-mode BatchNorm with one "
                              "value per channel; plan at a larger --resolution") from None
        penalty = self.strategy.penalty(self.model)
        (loss if penalty is None else loss + penalty).backward()
        self.optimizer.step()


@functools.lru_cache(maxsize=8)
def dataset_classes(data: DataConfig) -> int:
    """Classes of the dataset `data` names (its head's outputs), read once per data config
    (some datasets generate or scan their images to say)."""
    from ftlab.data import get_source

    return len(get_source(data.name).load(data).classes)


def experiment_step_peak(config: ExperimentConfig, num_classes: int,
                         device: torch.device) -> int:
    """The peak of the training step `config` takes at its batch size (`ftlab tune`'s check
    of a trial against tune.memory_budget)."""
    return StepProbe(experiment_spec(config, num_classes), device).peak(config.train.batch_size)


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in nested dicts and lists."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []
