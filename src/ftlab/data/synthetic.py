"""A small generated dataset: learnable in a few steps, different every image, no files.

Each class has its own colour and stripe orientation; every image adds its own phase and
noise. Tests and smoke runs use it to exercise the whole pipeline (PIL images through the
same transforms as real data) in seconds.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ftlab.config.schema import DataConfig, SyntheticConfig
from ftlab.data.sources import DatasetSource, SourceSplits, register_source


class SyntheticImages(Dataset):
    """`per_class` images for each class, labels in blocks: 0,0,..,1,1,.."""

    def __init__(self, config: SyntheticConfig, per_class: int, split_seed: int) -> None:
        self.config = config
        self.per_class = per_class
        self.split_seed = split_seed
        self.targets = [i // per_class for i in range(per_class * config.num_classes)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        label = self.targets[index]
        rng = np.random.default_rng((self.split_seed, index))
        size = self.config.image_size
        hue = label / self.config.num_classes
        colour = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.9))
        angle = math.pi * label / self.config.num_classes
        yy, xx = np.mgrid[0:size, 0:size] / size
        stripes = np.sin(2 * math.pi * 4 * (xx * math.cos(angle) + yy * math.sin(angle))
                         + rng.uniform(0, 2 * math.pi))
        image = 0.5 + 0.3 * stripes[..., None] * colour[None, None, :] \
            + 0.1 * rng.standard_normal((size, size, 3))
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        return Image.fromarray(pixels, mode="RGB"), label


def load_synthetic(config: DataConfig) -> SourceSplits:
    cfg = config.synthetic
    # Distinct seeds per split so no test image repeats a training image.
    train = SyntheticImages(cfg, cfg.train_per_class, split_seed=2 * config.split_seed)
    test = SyntheticImages(cfg, cfg.test_per_class, split_seed=2 * config.split_seed + 1)
    classes = [f"class_{i}" for i in range(cfg.num_classes)]
    return SourceSplits(train=train, train_targets=train.targets, test=test,
                        test_targets=test.targets, classes=classes)


register_source(DatasetSource(
    name="synthetic",
    load=load_synthetic,
    summary="generated coloured stripes, for tests and smoke runs (data.synthetic.*)",
    layout="nothing on disk",
))
