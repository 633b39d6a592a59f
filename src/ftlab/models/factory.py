"""Build a torchvision backbone with its starting weights and a fresh head for the target."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import get_model

from ftlab.models.adapters import ArchAdapter, get_adapter
from ftlab.models.weights import WeightsSource, load_pretrained, resolve_weights


@dataclass
class BuiltModel:
    """A model ready for a strategy, with what is needed to interpret it."""

    model: nn.Module
    adapter: ArchAdapter
    weights: WeightsSource
    arch: str


def build_model(arch: str, weights: WeightsSource | str | None, num_classes: int, *,
                pretrained: bool = True, seed: int = 0, progress: bool = True) -> BuiltModel:
    """Construct `arch`, load `weights` into its backbone, and re-initialise its head.

    Args:
        arch: torchvision architecture name with a registered adapter.
        weights: A resolved source, or a `model.weights` setting (torchvision name, file
            path, or none).
        num_classes: Classes of the target dataset; the new head has this many outputs.
        pretrained: False ignores `weights` (train from scratch) but keeps the resolved
            source's preprocessing, so scratch and fine-tuned runs see identical inputs.
        seed: Seeds the random initialisation of the head (and of everything when scratch).
    """
    adapter = get_adapter(arch)
    source = weights if isinstance(weights, WeightsSource) else resolve_weights(arch, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_model(arch, weights=None)
        if pretrained:
            load_pretrained(model, adapter, source, arch, progress=progress)
        adapter.reset_head(model, num_classes)
    return BuiltModel(model=model, adapter=adapter, weights=source if pretrained else
                      WeightsSource("none", "none", None, source.preprocessing), arch=arch)
