"""Training augmentation and evaluation preprocessing (torchvision.transforms.v2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from ftlab.config.schema import DataConfig
from ftlab.preprocessing import Preprocessing


@dataclass(frozen=True)
class InputSpec:
    """The resolved input geometry and normalisation of a run."""

    resolution: int
    eval_resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def resolve_input(config: DataConfig, weights: Preprocessing) -> InputSpec:
    """Config values where set, else those of the weights."""
    resolution = config.resolution or weights.crop_size
    fraction = config.eval_crop_fraction or weights.crop_fraction
    return InputSpec(resolution=resolution,
                     eval_resize=max(resolution, round(resolution / fraction)),
                     mean=tuple(config.mean or weights.mean),
                     std=tuple(config.std or weights.std))


def train_transform(config: DataConfig, spec: InputSpec) -> v2.Compose:
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.RandomResizedCrop(spec.resolution, scale=tuple(config.train_crop_scale),
                             antialias=True),
    ]
    if config.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec.mean, spec.std)]
    return v2.Compose(steps)


def eval_transform(spec: InputSpec) -> v2.Compose:
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(spec.eval_resize, antialias=True),
        v2.CenterCrop(spec.resolution),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(spec.mean, spec.std),
    ])
