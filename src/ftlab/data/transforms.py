"""Training augmentation and evaluation preprocessing (torchvision's transform functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ftlab.config.schema import DataConfig
from ftlab.data.augment import CENTRE, RANDOM_RESIZED, Augmentation
from ftlab.preprocessing import Preprocessing


@dataclass(frozen=True)
class InputSpec:
    """The resolved input geometry and normalisation of a run."""

    resolution: int
    eval_resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    """How images are resized (the weights'; the on-device pipeline always resizes
    bilinearly)."""


def resolve_input(config: DataConfig, weights: Preprocessing) -> InputSpec:
    """Config values where set, else those of the weights."""
    resolution = config.resolution or weights.crop_size
    fraction = config.eval_crop_fraction or weights.crop_fraction
    return InputSpec(resolution=resolution,
                     eval_resize=max(resolution, round(resolution / fraction)),
                     mean=tuple(config.mean or weights.mean),
                     std=tuple(config.std or weights.std),
                     interpolation=weights.interpolation)


class TrainTransform:
    """A training augmentation (`ftlab.data.augment`) + normalisation, on a uint8 tensor.

    The same operations as torchvision's Resize / CenterCrop / RandomCrop /
    RandomResizedCrop / RandomHorizontalFlip / ToDtype / Normalize, called as functions:
    composing transform objects costs ~50 us of Python per image, which at CIFAR sizes is as
    much as the work itself. Random draws use torch's CPU generator, which the loader seeds
    per sample.
    """

    def __init__(self, config: DataConfig, spec: InputSpec, augmentation: Augmentation) -> None:
        self.size = [spec.resolution, spec.resolution]
        self.resize, self.pad = spec.eval_resize, spec.resolution // 8
        self.geometry = augmentation.geometry
        self.scale = tuple(config.train_crop_scale)
        self.hflip = config.hflip and augmentation.flips
        self.policy = augmentation.policy() if augmentation.policy else None
        self.interpolation = InterpolationMode(spec.interpolation)
        self.scale_to_unit, self.shift = _normaliser(spec)

    def __call__(self, image: Any) -> torch.Tensor:
        pixels = F.pil_to_tensor(image) if not isinstance(image, torch.Tensor) else image
        pixels = self._crop(pixels)
        if self.hflip and torch.rand(1).item() < 0.5:
            pixels = pixels.flip(-1)
        if self.policy is not None:
            pixels = self.policy(pixels)
        return pixels.float().mul_(self.scale_to_unit).sub_(self.shift)

    def _crop(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.geometry == RANDOM_RESIZED:
            top, left, height, width = transforms.RandomResizedCrop.get_params(
                pixels, list(self.scale), [3 / 4, 4 / 3])
            return F.resized_crop(pixels, top, left, height, width, self.size,
                                  interpolation=self.interpolation, antialias=True)
        pixels = F.resize(pixels, self.resize, interpolation=self.interpolation, antialias=True)
        if self.geometry == CENTRE:
            return F.center_crop(pixels, self.size)
        # SHIFT: a crop of the padded image; F.crop fills what lies outside with zeros.
        height, width = pixels.shape[-2:]
        side = self.size[0]
        top = int(torch.randint(0, height + 2 * self.pad - side + 1, (1,)).item()) - self.pad
        left = int(torch.randint(0, width + 2 * self.pad - side + 1, (1,)).item()) - self.pad
        return F.crop(pixels, top, left, side, side)


class EvalTransform:
    """Resize the shorter side to `eval_resize`, centre-crop `resolution`, normalise."""

    def __init__(self, spec: InputSpec) -> None:
        self.resize = spec.eval_resize
        self.size = [spec.resolution, spec.resolution]
        self.interpolation = InterpolationMode(spec.interpolation)
        self.scale_to_unit, self.shift = _normaliser(spec)

    def __call__(self, image: Any) -> torch.Tensor:
        pixels = F.pil_to_tensor(image) if not isinstance(image, torch.Tensor) else image
        pixels = F.center_crop(F.resize(pixels, self.resize, interpolation=self.interpolation,
                                        antialias=True), self.size)
        return pixels.float().mul_(self.scale_to_unit).sub_(self.shift)


def _normaliser(spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 / (255 std), mean / std): uint8 to normalised float as one multiply and subtract."""
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return 1.0 / (255.0 * std), mean / std


def train_transform(config: DataConfig, spec: InputSpec,
                    augmentation: Augmentation) -> TrainTransform:
    return TrainTransform(config, spec, augmentation)


def eval_transform(spec: InputSpec) -> EvalTransform:
    return EvalTransform(spec)
