"""The three loaders of a run: worker pipeline or on-device pipeline, split over processes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ftlab.config.schema import ExperimentConfig
from ftlab.data import (
    BatchSource,
    DataBundle,
    DeviceBatches,
    LoaderBatches,
    choose_augment,
    default_workers,
    eval_loader,
    get_source,
    in_memory,
    train_loader,
)
from ftlab.errors import ConfigError
from ftlab.runtime.distributed import Distributed


@dataclass(frozen=True)
class Loaders:
    """The batch sources of a run's three splits (val is None without a validation split,
    test is None when the run does not evaluate on test: `train.evaluate_test=false`)."""

    train: BatchSource
    val: BatchSource | None
    test: BatchSource | None


def build_loaders(config: ExperimentConfig, data: DataBundle, device: torch.device,
                  dist: Distributed) -> Loaders:
    batch = config.train.batch_size
    eval_batch = config.train.eval_batch_size or 2 * batch
    dist.local_batch(batch)
    if dist.enabled and len(data.train) < batch:
        raise ConfigError(f"train.batch_size={batch} is larger than the {len(data.train)} "
                          "training images: data-parallel training needs at least one full "
                          "global batch")
    if resolve_pipeline(config, device) == "device":
        return _device_loaders(config, data, device, batch, eval_batch, dist)
    workers = default_workers() if config.data.num_workers is None else config.data.num_workers
    pin = device.type == "cuda"
    shard = {"rank": dist.rank, "world_size": dist.world_size}
    return Loaders(
        train=LoaderBatches(train_loader(data.train, batch, config.train.seed, workers, pin,
                                         **shard)),
        val=LoaderBatches(eval_loader(data.val, eval_batch, workers, pin, **shard))
        if data.val else None,
        test=LoaderBatches(eval_loader(data.test, eval_batch, workers, pin, **shard))
        if config.train.evaluate_test else None,
    )


def resolve_pipeline(config: ExperimentConfig, device: torch.device) -> str:
    if config.data.pipeline != "auto":
        return config.data.pipeline
    in_memory_source = get_source(config.data.name).in_memory
    per_image = not choose_augment(config.data, config.train.epochs).on_device
    return "device" if in_memory_source and device.type == "cuda" and not per_image \
        else "workers"


def _device_loaders(config: ExperimentConfig, data: DataBundle, device: torch.device,
                    batch: int, eval_batch: int, dist: Distributed) -> Loaders:
    def batches(subset, size: int, train: bool) -> DeviceBatches:
        images, labels = in_memory(subset)
        return DeviceBatches(images.to(device), labels.to(device), size, data.input,
                             train=train, crop_scale=config.data.train_crop_scale,
                             hflip=config.data.hflip, seed=config.train.seed, rank=dist.rank,
                             world_size=dist.world_size, augmentation=data.augmentation)

    return Loaders(train=batches(data.train, batch, True),
                   val=batches(data.val, eval_batch, False) if data.val else None,
                   test=batches(data.test, eval_batch, False)
                   if config.train.evaluate_test else None)
