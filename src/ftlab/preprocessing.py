"""How images must be prepared for a given set of weights.

Lives outside `data` and `models` because both need it: the weights decide the numbers,
the data pipeline applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocessing:
    """Normalisation and evaluation geometry that a set of weights was trained with.

    Attributes:
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided out after the mean.
        crop_size: Side of the square the network saw at evaluation time.
        resize_size: Shorter side the image is resized to before the centre crop; the ratio
            crop_size / resize_size is the evaluation crop fraction (0.875 for 224/256).
        interpolation: How images are resized: bilinear (torchvision's weights) or bicubic
            (most of timm's).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"

    @property
    def crop_fraction(self) -> float:
        return self.crop_size / self.resize_size
