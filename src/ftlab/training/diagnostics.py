"""Warnings for runs that train without learning: one line each, in the log and summary.json,
never fatal.

Two silent failures are common enough to check for every run:

- **Degenerate features.** ImageNet weights fed inputs far smaller than they were trained on
  (MobileNetV2 at 32 px: a 1x1 last feature map) give pooled features that are zero or the
  same for every image. Every strategy then trains at chance. Before the first epoch the
  pretrained backbone's pooled features (the head's input) are measured on a batch of
  training images.
- **A loss that does not move.** After the first epoch the loss is compared with ln(C), the
  loss of a uniform guess over C classes (where a fresh head starts): a learning rate far too
  low or too high, or degenerate features, leave it there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ftlab.models import ArchAdapter
from ftlab.models.probe import observe

DEGENERATE_SHARE = 0.05
"""Warn when fewer than this share of the pooled features vary across the probe images."""
VARYING = 1e-3
"""A feature varies when its spread over the images exceeds this fraction of the features'
overall scale (zero features and features equal for every image do not)."""
STILL_LOSS = 0.97
"""Warn when the first epoch's loss is at least this fraction of ln(C)."""


@dataclass(frozen=True)
class FeatureCheck:
    """Pooled pretrained features of one batch of training images."""

    images: int
    features: int
    zero_share: float
    """Share of all values (images x features) that are exactly zero."""
    varying_share: float
    """Share of the features that differ between the images (see `VARYING`)."""
    resolution: int
    expected_resolution: int
    """Input side the weights were trained at (their evaluation crop)."""

    @property
    def degenerate(self) -> bool:
        return self.varying_share < DEGENERATE_SHARE

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "degenerate": self.degenerate}

    def warning(self) -> str | None:
        if not self.degenerate:
            return None
        return (f"degenerate pretrained features at {self.resolution} px: only "
                f"{100 * self.varying_share:.1f} % of the {self.features} pooled features vary "
                f"across {self.images} training images ({100 * self.zero_share:.1f} % of the "
                f"values are zero), so every strategy will train near chance; the weights "
                f"were trained on {self.expected_resolution} px inputs: raise data.resolution "
                f"towards that")


def pooled_features(model: nn.Module, adapter: ArchAdapter, images: torch.Tensor
                    ) -> torch.Tensor:
    """The head's input for `images`: [images, features], computed in eval mode."""
    captured: list[torch.Tensor] = []
    head = adapter.head(model)
    handle = head.register_forward_pre_hook(
        lambda _, inputs: captured.append(inputs[0].detach().flatten(1).float().cpu()))
    observe(model, images, [handle])
    return captured[0]


def check_features(features: torch.Tensor, resolution: int, expected_resolution: int
                   ) -> FeatureCheck:
    """How informative `features` ([images, features]) are; see `FeatureCheck`."""
    scale = features.abs().mean().item()
    spread = features.std(dim=0) if features.shape[0] > 1 else torch.zeros(features.shape[1])
    varying = (spread > VARYING * scale).float().mean().item() if scale > 0 else 0.0
    return FeatureCheck(images=int(features.shape[0]), features=int(features.shape[1]),
                        zero_share=(features == 0).float().mean().item(),
                        varying_share=varying, resolution=resolution,
                        expected_resolution=expected_resolution)


def still_loss_warning(num_classes: int, train_loss: float, val_loss: float | None
                       ) -> str | None:
    """A warning when the first epoch left the loss at (or above) ln(C); else None.

    The validation loss, measured after the epoch, says where the model ended; without a
    validation split the epoch's mean training loss stands in for it.
    """
    if num_classes < 2:
        return None
    chance = math.log(num_classes)
    loss, which = (val_loss, "validation") if val_loss is not None else (train_loss, "training")
    if not math.isfinite(loss) or loss < STILL_LOSS * chance:
        return None
    return (f"the {which} loss has not moved from its starting value after epoch 1: "
            f"{loss:.3f} against ln({num_classes}) = {chance:.3f}, the loss of a uniform guess; "
            "the learning rate may be far too low or too high (optim.lr), or the features "
            "degenerate (see the feature check)")
