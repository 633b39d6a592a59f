"""Training augmentations by name (`data.augment`), and the rule that `auto` follows.

An augmentation is a geometry (how the training crop is taken), whether images are flipped,
and optionally a torchvision policy (RandAugment, TrivialAugment) applied to the crop. The
worker pipeline (`TrainTransform`) and the on-device pipeline (`DeviceBatches`) read the
same object, so a name means the same thing in both.

`auto` is chosen from the training budget, because how much augmentation pays depends on it:
at a few passes over the data any random-resized crop slows convergence more than it
regularises (measured in docs/strategies.md, "Augmentation"), while over many passes the
same network overfits without it. The rule is `AUTO_RULE`; the run's config.yaml records
the augmentation it chose, so a rerun does not depend on the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from torch import nn
from torchvision.transforms import v2

from ftlab.config.schema import DataConfig
from ftlab.errors import ConfigError
from ftlab.registry import Registry

CENTRE, SHIFT, RANDOM_RESIZED = "centre", "shift", "random_resized"
AUTO = "auto"


@dataclass(frozen=True)
class Augmentation:
    """What one `data.augment` name does to a training image."""

    name: str
    geometry: str
    """centre: the evaluation view (resize the shorter side, centre crop); shift: that view
    moved at random over the image padded by 1/8 of the resolution (the CIFAR recipe's
    pad-and-crop); random_resized: RandomResizedCrop with data.train_crop_scale."""
    flips: bool
    """Random horizontal flips (when data.hflip is also true)."""
    policy: Optional[Callable[[], nn.Module]] = None
    """A torchvision augmentation policy applied per image to the uint8 crop."""
    description: str = ""

    @property
    def whole_frame(self) -> bool:
        """Whether training sees the whole image at the network's input size (none, flip and
        crop do; random-resized crops zoom in). Evaluation then sees the whole image too
        (`choose_eval_crop`)."""
        return self.geometry != RANDOM_RESIZED

    @property
    def on_device(self) -> bool:
        """Whether the on-device pipeline can run it: geometry and flips are done there for a
        whole batch at once; a per-image policy is not."""
        return self.policy is None


AUGMENTATIONS: Registry[Augmentation] = Registry("data.augment")
for _augmentation in (
    Augmentation("none", CENTRE, False, description="the evaluation view, unchanged"),
    Augmentation("flip", CENTRE, True, description="the evaluation view, flipped at random"),
    Augmentation("crop", SHIFT, True,
                 description="a random shift of the evaluation view over the image padded by "
                             "1/8 of the resolution, flipped at random"),
    Augmentation("rrc", RANDOM_RESIZED, True,
                 description="RandomResizedCrop (area data.train_crop_scale), flipped at random"),
    Augmentation("randaugment", RANDOM_RESIZED, True,
                 policy=lambda: v2.RandAugment(num_ops=2, magnitude=9),
                 description="rrc, then torchvision's RandAugment (2 ops, magnitude 9)"),
    Augmentation("trivialaugment", RANDOM_RESIZED, True, policy=v2.TrivialAugmentWide,
                 description="rrc, then torchvision's TrivialAugmentWide"),
):
    AUGMENTATIONS.register(_augmentation.name, _augmentation)

AUTO_RULE: tuple[tuple[float, str], ...] = ((3, "flip"), (float("inf"), "rrc"))
"""(most epochs, augmentation): `auto` takes the first row whose epoch count the run's
budget does not exceed. Measured on the mirror (benchmarks/defaults_vs_loop.py; the table
and its figures are in docs/strategies.md, "Augmentation")."""


def check_augment(config: DataConfig) -> None:
    """A known name (or auto), and no setting the chosen augmentation would ignore."""
    if config.augment == AUTO:
        return
    if config.augment not in AUGMENTATIONS:
        raise ConfigError(f"data.augment={config.augment!r} is unknown; choose one of: "
                          + ", ".join(augmentation_names()))
    augmentation = AUGMENTATIONS.get(config.augment)
    if augmentation.geometry == CENTRE and augmentation.flips and not config.hflip:
        raise ConfigError("data.augment=flip with data.hflip=false leaves nothing to do; set "
                          "data.augment=none for no augmentation, or data.hflip=true")
    if augmentation.geometry != RANDOM_RESIZED and _crop_scale_set(config):
        raise ConfigError(f"data.train_crop_scale={list(config.train_crop_scale)} is not used "
                          f"by data.augment={config.augment}; it sets the area of rrc, "
                          "randaugment and trivialaugment (or auto)")


def choose_augment(config: DataConfig, epochs: int) -> Augmentation:
    """The augmentation `config.augment` means for a run of `epochs` epochs. `auto` follows
    `AUTO_RULE`, except that a crop scale other than the default asks for random-resized
    crops (rrc): that is how a search over `data.train_crop_scale` stays meaningful."""
    if config.augment != AUTO:
        return AUGMENTATIONS.get(config.augment)
    if _crop_scale_set(config):
        return AUGMENTATIONS.get("rrc")
    chosen = next(rule for most, rule in AUTO_RULE if epochs <= most)
    return AUGMENTATIONS.get(chosen)


def choose_eval_crop(config: DataConfig, augmentation: Augmentation) -> Optional[float]:
    """The evaluation centre-crop fraction for training with `augmentation`: the configured
    one when set, else 1.0 (the whole image) when training sees whole images, else None
    (the weights' own, 0.875 for 224/256).

    The weights' fraction belongs to the recipe they were trained with: random-resized crops
    make objects look larger than a resized whole image does, and a centre crop at test
    narrows that gap (Touvron et al., *Fixing the train-test resolution discrepancy*, 2019).
    A network fine-tuned on whole images has no such gap, and the crop only throws away
    labelled pixels; measured on the mirror in docs/strategies.md, "Augmentation"."""
    if config.eval_crop_fraction is not None:
        return config.eval_crop_fraction
    return 1.0 if augmentation.whole_frame else None


def _crop_scale_set(config: DataConfig) -> bool:
    return tuple(config.train_crop_scale) != tuple(DataConfig().train_crop_scale)


def augmentation_names() -> list[str]:
    return [AUTO, *AUGMENTATIONS.names()]
