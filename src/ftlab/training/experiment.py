"""Turn a config into the objects a run needs: data, model, strategy, optimizer, scheduler.

Cheap checks come first (registry names, device), then data (a missing dataset fails before
a weights download), then the model. Nothing here writes to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ftlab.config.schema import ExperimentConfig
from ftlab.data import DataBundle, build_data, default_workers, eval_loader, train_loader
from ftlab.data.device_pipeline import DeviceBatches, in_memory
from ftlab.data.sources import get_source
from ftlab.errors import ConfigError
from ftlab.models import BuiltModel, build_model, count_parameters, get_adapter, resolve_weights
from ftlab.strategies import Strategy, get_strategy
from ftlab.training.loop import StepSettings
from ftlab.training.optim import OPTIMIZERS, build_optimizer
from ftlab.training.schedule import SHAPES, build_scheduler

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
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    loss_fn: nn.Module

    @property
    def model(self) -> nn.Module:
        return self.built.model

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
    get_adapter(config.model.arch)
    get_source(config.data.name)
    OPTIMIZERS.check(config.optim.name)
    SHAPES.check(config.schedule.name)
    resolve_device(config.train.device, config.train.amp)
    return get_strategy(config.strategy)


def resolve_device(name: str, amp: str = "none") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use "
                          "train.device=cpu or auto")
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          "cpu" if name == "auto" else name)
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 or none on CPU")
    return device


def build_experiment(config: ExperimentConfig, *, load_weights: bool = True) -> Experiment:
    """Build data, model, strategy and optimizer for `config`.

    Args:
        load_weights: False skips reading pretrained weights, for a resume whose checkpoint
            replaces them anyway (the weights file need not exist any more).
    """
    strategy = check_config(config)
    train_cfg = config.train
    if train_cfg.num_threads is not None:
        torch.set_num_threads(train_cfg.num_threads)
    device = resolve_device(train_cfg.device, train_cfg.amp)
    source = resolve_weights(config.model.arch, config.model.weights)
    data = build_data(config.data, source.preprocessing)
    built = build_model(config.model.arch, source, data.num_classes,
                        pretrained=strategy.pretrained and load_weights, seed=train_cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed + 1)  # inserted modules' initialisation
        strategy.prepare(built.model, built.adapter, input_size=data.input.resolution)
    channels_last = train_cfg.channels_last and device.type == "cuda"
    built.model.to(device, memory_format=torch.channels_last if channels_last else
                   torch.contiguous_format)
    settings = StepSettings(device=device, amp_dtype=AMP_DTYPES[train_cfg.amp],
                            channels_last=channels_last, grad_clip_norm=train_cfg.grad_clip_norm,
                            log_every=train_cfg.log_every)
    loaders = _loaders(config, data, device)
    optimizer = build_optimizer(strategy.param_groups(built.model, built.adapter, config.optim),
                                config.optim)
    scheduler = build_scheduler(optimizer, config.schedule, len(loaders["train"]),
                                train_cfg.epochs)
    return Experiment(
        config=config, strategy=strategy, built=built, data=data, settings=settings,
        train_loader=loaders["train"], val_loader=loaders["val"], test_loader=loaders["test"],
        optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda") if train_cfg.amp == "fp16" else None,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing),
    )


def _loaders(config: ExperimentConfig, data: DataBundle, device: torch.device
             ) -> dict[str, Any]:
    batch = config.train.batch_size
    eval_batch = config.train.eval_batch_size or 2 * batch
    if resolve_pipeline(config, device) == "device":
        return _device_loaders(config, data, device, batch, eval_batch)
    workers = default_workers() if config.data.num_workers is None else config.data.num_workers
    pin = device.type == "cuda"
    return {
        "train": train_loader(data.train, batch, config.train.seed, workers, pin),
        "val": eval_loader(data.val, eval_batch, workers, pin) if data.val else None,
        "test": eval_loader(data.test, eval_batch, workers, pin),
    }


def resolve_pipeline(config: ExperimentConfig, device: torch.device) -> str:
    if config.data.pipeline != "auto":
        return config.data.pipeline
    in_memory = get_source(config.data.name).in_memory
    return "device" if in_memory and device.type == "cuda" else "workers"


def _device_loaders(config: ExperimentConfig, data: DataBundle, device: torch.device,
                    batch: int, eval_batch: int) -> dict[str, Any]:
    def batches(subset, size: int, train: bool) -> DeviceBatches:
        images, labels = in_memory(subset)
        return DeviceBatches(images.to(device), labels.to(device), size, data.input,
                             train=train, crop_scale=config.data.train_crop_scale,
                             hflip=config.data.hflip, seed=config.train.seed)

    return {
        "train": batches(data.train, batch, True),
        "val": batches(data.val, eval_batch, False) if data.val else None,
        "test": batches(data.test, eval_batch, False),
    }
