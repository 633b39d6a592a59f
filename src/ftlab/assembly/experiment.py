"""Turn a config into the objects a run needs: data, model, strategy, optimizer, scheduler.

Cheap checks come first (registry names, device), then data (a missing dataset fails before
a weights download), then the model. Nothing here writes to disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import partial

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ftlab.config.schema import ExperimentConfig
from ftlab.data import (BatchSource, DataBundle, build_data, check_augment, choose_augment,
                        choose_eval_crop)
from ftlab.data.sources import get_source
from ftlab.errors import ConfigError
from ftlab.models import BuiltModel, count_parameters, get_adapter, resolve_weights
from ftlab.optimization import (
    optimizer_options,
    resolved_optim,
    resolved_schedule,
    schedule_options,
)
from ftlab.strategies import Strategy, get_strategy, prepare_model
from ftlab.assembly.compiled import CompiledOrEager
from ftlab.assembly.fits import TRAIN_FACTOR, check_step_fits
from ftlab.assembly.frozen import store_frozen_weights
from ftlab.assembly.loaders import build_loaders
from ftlab.assembly.optim import build_optimizer
from ftlab.assembly.schedule import build_scheduler
from ftlab.assembly.step import StepSettings, TrainStep
from ftlab.runtime import Distributed, resolve_amp, resolve_device

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16,
                                             "fp16": torch.float16}


@dataclass
class Experiment:
    """Everything a `Trainer` runs, built from one config."""

    config: ExperimentConfig
    strategy: Strategy
    built: BuiltModel
    data: DataBundle
    settings: StepSettings
    train_loader: BatchSource
    val_loader: BatchSource | None
    test_loader: BatchSource | None
    """None when the run does not evaluate on test (`train.evaluate_test=false`)."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    loss_fn: nn.Module
    dist: Distributed = field(default_factory=Distributed)
    train_model: nn.Module | None = None
    wrapped_for: tuple[str, ...] = ()

    @property
    def model(self) -> nn.Module:
        return self.built.model

    def wrap_for_training(self) -> nn.Module:
        """What the training step calls: the model, wrapped in DDP with several processes and
        compiled with `train.compile`. Rebuilt when the trainable set changes, because DDP
        registers only the parameters that require gradients when it is built (frozen ones
        stay out of its reducer) and gradual unfreezing changes them."""
        trainable = tuple(self.trainable_names())
        if self.train_model is not None and self.wrapped_for == trainable:
            return self.train_model
        model: nn.Module = self.model
        if self.dist.enabled:
            device = self.settings.device
            model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        if self.config.train.compile:
            model = CompiledOrEager(model)
        self.train_model, self.wrapped_for = model, trainable
        return model

    def train_step(self, model: nn.Module) -> TrainStep:
        """One optimisation step's parts, for `model` (this experiment's, maybe wrapped)."""
        return TrainStep(model=model, optimizer=self.optimizer, scheduler=self.scheduler,
                         scaler=self.scaler, loss_fn=self.loss_fn, settings=self.settings,
                         penalty=partial(self.strategy.penalty, self.model))

    @property
    def group_names(self) -> list[str]:
        return [g["name"] for g in self.optimizer.param_groups]

    def parameter_counts(self) -> tuple[int, int]:
        """(parameters the optimizer updates, all parameters), each tensor counted once."""
        optimized = {id(p): p.numel() for g in self.optimizer.param_groups for p in g["params"]}
        return sum(optimized.values()), count_parameters(self.model)[1]

    def trainable_names(self) -> list[str]:
        return [name for name, p in self.model.named_parameters() if p.requires_grad]


def check_config(config: ExperimentConfig) -> Strategy:
    """Validate every registry name and the device before anything heavy happens."""
    if config.model.head == "keep":
        raise ConfigError("model.head=keep is for ftlab eval and ftlab predict of pretrained "
                          "weights; training gives the network a new head for the dataset's "
                          "classes, so set model.head=new")
    get_adapter(config.model.arch)
    get_source(config.data.name)
    check_augment(config.data)
    optimizer_options(config.optim)
    schedule_options(config.schedule)
    resolve_device(config.train.device, config.train.amp)
    return get_strategy(config.strategy)


def resolve_config(config: ExperimentConfig) -> ExperimentConfig:
    """`config` checked as `check_config` does, with the strategy's options written out in
    full (defaults included), the optimizer's and schedule's too, optim.lr set (the strategy's default when unset) and
    data.augment=auto replaced by what it chooses for train.epochs (and an unset
    data.eval_crop_fraction by what goes with that augmentation): the config a run folder
    records, which reruns the same training whatever later defaults become."""
    strategy = check_config(config)  # built once here, its options written out below
    if config.optim.lr is None:
        config = replace(config, optim=replace(config.optim, lr=strategy.default_lr))
    chosen = choose_augment(config.data, config.train.epochs)
    config = replace(config, data=replace(config.data, augment=chosen.name,
                                          eval_crop_fraction=choose_eval_crop(config.data,
                                                                              chosen)))
    return replace(config, strategy=strategy.resolved_config(),
                   optim=resolved_optim(config.optim),
                   schedule=resolved_schedule(config.schedule))


def _sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over the global batch; after `prepare`, so inserted norms sync too."""
    if device.type != "cuda":
        raise ConfigError("train.sync_batchnorm=true needs CUDA devices (PyTorch's "
                          "SyncBatchNorm has no CPU implementation); set it to false on CPU")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def _deterministic() -> None:
    """Process-wide, as PyTorch's switches are: the same kernels, the same order of
    floating-point additions, every run (https://pytorch.org/docs/stable/notes/randomness.html)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def build_experiment(config: ExperimentConfig, *, load_weights: bool = True,
                     dist: Distributed | None = None) -> Experiment:
    """Build data, model, strategy and optimizer for `config`.

    Args:
        load_weights: False skips reading pretrained weights, for a resume whose checkpoint
            replaces them anyway (the weights file need not exist any more).
        dist: this process's place in a data-parallel run (default: alone).
    """
    dist = dist or Distributed()
    check_config(config)
    train_cfg = config.train
    if train_cfg.num_threads is not None:
        torch.set_num_threads(train_cfg.num_threads)
    if train_cfg.deterministic:
        _deterministic()
    device = resolve_device(train_cfg.device, train_cfg.amp)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    source = resolve_weights(config.model.arch, config.model.weights)
    data = build_data(config.data, source.preprocessing, epochs=train_cfg.epochs)
    prepared = prepare_model(config.model.arch, source, config.strategy, data.num_classes,
                             data.input.resolution, seed=train_cfg.seed,
                             load_weights=load_weights)
    built, strategy = prepared.built, prepared.strategy
    resolution = data.input.resolution
    check_step_fits(built.model, train_cfg.batch_size // dist.world_size, resolution, device,
                    what=f"a training step of {config.model.arch} at batch "
                         f"{train_cfg.batch_size} and {resolution} px",
                    fix="lower train.batch_size or data.resolution", share=TRAIN_FACTOR)
    if train_cfg.sync_batchnorm and dist.enabled:
        built.model = _sync_batchnorm(built.model, device)
    channels_last = train_cfg.channels_last and device.type == "cuda"
    built.model.to(device, memory_format=torch.channels_last if channels_last else
                   torch.contiguous_format)
    store_frozen_weights(built.model, strategy, built.adapter, train_cfg.frozen_weights,
                         quiet=not dist.is_main)
    amp = resolve_amp(train_cfg.amp, device)
    settings = StepSettings(device=device, amp_dtype=AMP_DTYPES[amp],
                            channels_last=channels_last, grad_clip_norm=train_cfg.grad_clip_norm,
                            log_every=train_cfg.log_every,
                            skip_nonfinite=train_cfg.nonfinite == "skip")
    loaders = build_loaders(config, data, device, dist)
    optimizer = build_optimizer(strategy.param_groups(built.model, built.adapter, config.optim),
                                config.optim)
    scheduler = build_scheduler(optimizer, config.schedule, len(loaders.train),
                                train_cfg.epochs)
    return Experiment(
        config=config, strategy=strategy, built=built, data=data, settings=settings,
        train_loader=loaders.train, val_loader=loaders.val, test_loader=loaders.test,
        optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda") if amp == "fp16" else None,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing), dist=dist,
    )
