"""Augmentation on the device, for datasets small enough to live there as uint8 (CIFAR).

On a GPU, the stock pipeline decodes and upsamples every 32 px image to 224 px on CPU
workers, which cannot keep up with the model. Here the whole split is one uint8 tensor on the
device; each batch is gathered, cropped and resized in one `roi_align` call (bilinear, with
adaptive multi-sample averaging when a crop shrinks, like antialiasing), flipped and
normalised there. Batches follow the same seeded shuffle as the worker pipeline, so labels
arrive in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler
from torchvision.ops import roi_align

from ftlab.data.augment import AUGMENTATIONS, RANDOM_RESIZED, SHIFT, Augmentation
from ftlab.data.loading import SeededShuffleSampler, ShardSampler, TransformedSubset, epoch_seed
from ftlab.data.transforms import InputSpec
from ftlab.data.unreadable import read_sample
from ftlab.errors import ConfigError, DataError

MAX_BYTES = 8 * 2**30
RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect-ratio range


def in_memory(subset: TransformedSubset) -> tuple[torch.Tensor, torch.Tensor]:
    """The subset's images as one uint8 N x 3 x H x W tensor, and its labels."""
    data = getattr(subset.base, "data", None)
    if isinstance(data, np.ndarray) and data.ndim == 4:  # CIFAR keeps N x H x W x 3 uint8
        images = torch.from_numpy(data[subset.indices]).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(subset.targets)
    arrays, labels = [], []
    for index, label in zip(subset.indices, subset.targets):
        sample = read_sample(subset.base, index, subset.bad_images)
        if sample is not None:
            arrays.append(np.asarray(sample[0].convert("RGB")))
            labels.append(label)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"data.pipeline=device needs images of one size, found {len(shapes)} "
                        f"sizes (e.g. {sorted(shapes)[:2]}); use data.pipeline=workers")
    size = len(arrays) * math.prod(next(iter(shapes)))
    if size > MAX_BYTES:
        raise DataError(f"data.pipeline=device would hold {size / 2**30:.1f} GiB of images; "
                        "use data.pipeline=workers for a dataset this large")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels)


class DeviceBatches:
    """A `BatchSource` of (normalised images, labels) batches computed on `images.device`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 spec: InputSpec, *, train: bool, crop_scale: Sequence[float] = (0.35, 1.0),
                 hflip: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 augmentation: Augmentation | None = None) -> None:
        """`batch_size` is the global batch; with several processes each takes its share of
        every batch (training) or of the images (evaluation), as the worker loaders do.
        `augmentation` (training only) is the run's `data.augment`, resolved."""
        if train and augmentation is None:
            raise ValueError("a training DeviceBatches needs the run's augmentation")
        augmentation = augmentation or AUGMENTATIONS.get("none")
        if train and not augmentation.on_device:
            raise ConfigError(f"data.augment={augmentation.name} works image by image, which "
                              "the on-device pipeline cannot; set data.pipeline=workers")
        self.images, self.labels = images, labels
        self.batch_size, self.spec, self.train = batch_size // world_size, spec, train
        self.geometry = augmentation.geometry
        self.crop_scale, self.seed = tuple(crop_scale), seed
        self.hflip = hflip and train and augmentation.flips
        self.drop_last = train and world_size == 1 and len(images) > batch_size
        self.sampler: Sampler = (
            SeededShuffleSampler(len(images), seed, batch_size, rank, world_size) if train
            else ShardSampler(len(images), rank, world_size))
        self.epoch, self.first = 0, 0
        device, scale = images.device, 255.0
        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * scale
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * scale

    def set_position(self, epoch: int, batch: int = 0) -> None:
        """Epoch `epoch`'s order and augmentation, from its batch number `batch`."""
        if batch and not self.train:
            raise ValueError("an evaluation pass always reads its split from the start")
        if isinstance(self.sampler, SeededShuffleSampler):
            self.sampler.set_epoch(epoch, start=batch * self.batch_size)
        self.epoch, self.first = epoch, batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def requested_images(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.images.device
        order = torch.tensor([i for i, _ in self.sampler] if self.train else list(self.sampler),
                             device=device)
        generator = torch.Generator(device=device)
        for b in range(len(self)):
            # One seed per (epoch, batch): a run resumed mid-epoch augments as it would have.
            generator.manual_seed(epoch_seed(self.seed, self.epoch, stream=3) + self.first + b)
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self._batch(index, generator), self.labels[index]

    def _batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pixels = self.images[index].float()
        n, _, height, width = pixels.shape
        if self.train and self.geometry == RANDOM_RESIZED:
            boxes = random_resized_boxes(n, height, width, self.crop_scale, generator)
        elif self.train and self.geometry == SHIFT:
            boxes = shifted_boxes(n, height, width, self.spec, generator)
        else:
            boxes = center_boxes(n, height, width, self.spec, pixels.device)
        numbered = torch.cat([torch.arange(n, device=pixels.device, dtype=boxes.dtype)[:, None],
                              boxes], dim=1)
        out = roi_align(pixels, numbered, output_size=self.spec.resolution, spatial_scale=1.0,
                        sampling_ratio=-1, aligned=True)
        if self.train and self.geometry == SHIFT:
            out = out * inside(boxes, height, width, self.spec.resolution)
        if self.hflip:
            flip = torch.rand(n, device=pixels.device, generator=generator) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        return (out - self.mean) / self.std


def random_resized_boxes(n: int, height: int, width: int, scale: Sequence[float],
                         generator: torch.Generator, attempts: int = 10) -> torch.Tensor:
    """RandomResizedCrop's boxes (x0, y0, x1, y1) for n images, drawn in one go.

    As torchvision: up to 10 tries of an area share in `scale` and a log-uniform aspect ratio
    in [3/4, 4/3]; the first that fits wins; if none fits, the whole image.
    """
    device = generator.device
    area = height * width * _uniform((n, attempts), *scale, generator)
    ratio = torch.exp(_uniform((n, attempts), math.log(RATIO[0]), math.log(RATIO[1]), generator))
    w = torch.round(torch.sqrt(area * ratio))
    h = torch.round(torch.sqrt(area / ratio))
    fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = fits.float().argmax(dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), torch.full((n,), float(width),
                                                                        device=device))
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), torch.full((n,), float(height),
                                                                        device=device))
    x0 = torch.floor(torch.rand(n, device=device, generator=generator) * (width - w + 1))
    y0 = torch.floor(torch.rand(n, device=device, generator=generator) * (height - h + 1))
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def center_boxes(n: int, height: int, width: int, spec: InputSpec, device: torch.device
                 ) -> torch.Tensor:
    """Resize(shorter side to eval_resize) + CenterCrop(resolution) as one box per image,
    with torchvision's rounding of the resized size and of the crop offset."""
    short, long = min(height, width), max(height, width)
    scale = spec.eval_resize / short
    resized_long = int(spec.eval_resize * long / short)
    resized_h, resized_w = (spec.eval_resize, resized_long) if height <= width else \
        (resized_long, spec.eval_resize)
    top = int(round((resized_h - spec.resolution) / 2.0))
    left = int(round((resized_w - spec.resolution) / 2.0))
    box = torch.tensor([left, top, left + spec.resolution, top + spec.resolution],
                       device=device, dtype=torch.float32) / scale
    return box.expand(n, 4)


def shifted_boxes(n: int, height: int, width: int, spec: InputSpec,
                  generator: torch.Generator) -> torch.Tensor:
    """The evaluation view moved by whole output pixels over the image padded by
    resolution / 8 on each side, as `TrainTransform`'s shift (the padding is zeroed by
    `inside`)."""
    short, long = min(height, width), max(height, width)
    scale = short / spec.eval_resize  # source pixels per output pixel
    resized_long = int(spec.eval_resize * long / short)
    resized_h, resized_w = (spec.eval_resize, resized_long) if height <= width else \
        (resized_long, spec.eval_resize)
    side, pad = spec.resolution, spec.resolution // 8
    device = generator.device
    top = torch.randint(0, resized_h + 2 * pad - side + 1, (n,), device=device,
                        generator=generator) - pad
    left = torch.randint(0, resized_w + 2 * pad - side + 1, (n,), device=device,
                         generator=generator) - pad
    boxes = torch.stack([left, top, left + side, top + side], dim=1).float()
    return boxes * scale


def inside(boxes: torch.Tensor, height: int, width: int, side: int) -> torch.Tensor:
    """n x 1 x side x side: 1 where an output pixel's centre lies in the image, 0 in the
    padding, so that a shifted crop is zero-padded as torchvision's crop pads (roi_align
    alone repeats the edge for samples within one pixel outside it)."""
    steps = (torch.arange(side, device=boxes.device) + 0.5) / side
    xs = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])
    ys = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
    cols = (xs >= 0) & (xs <= width)
    rows = (ys >= 0) & (ys <= height)
    return (rows[:, None, :, None] & cols[:, None, None, :]).to(boxes.dtype)


def _uniform(shape: tuple[int, int], low: float, high: float, generator: torch.Generator
             ) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, device=generator.device, generator=generator)
