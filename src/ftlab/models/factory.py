"""Build a torchvision backbone with its starting weights and a fresh head for the target;
or only its structure (the meta device), to learn its head and block names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import get_model

from ftlab.models.adapters import ArchAdapter, get_adapter
from ftlab.models.timm_models import construct as construct_timm
from ftlab.models.timm_models import is_timm
from ftlab.models.weights import WeightsSource, load_pretrained, resolve_weights


@dataclass
class BuiltModel:
    """A model ready for a strategy, with what is needed to interpret it."""

    model: nn.Module
    adapter: ArchAdapter
    weights: WeightsSource
    arch: str


def build_model(arch: str, weights: WeightsSource | str | None, num_classes: int, *,
                pretrained: bool = True, seed: int = 0, progress: bool = True,
                keep_head: bool = False) -> BuiltModel:
    """Construct `arch`, load `weights` into its backbone, and re-initialise its head.

    Args:
        arch: torchvision architecture name with a registered adapter.
        weights: A resolved source, or a `model.weights` setting (torchvision name, file
            path, or none).
        num_classes: Classes of the target dataset; the new head has this many outputs.
        pretrained: False ignores `weights` (train from scratch) but keeps the resolved
            source's preprocessing, so scratch and fine-tuned runs see identical inputs.
        seed: Seeds the random initialisation of the head (and of everything when scratch).
        keep_head: Keep the head of `weights` (ImageNet's 1000 classes for torchvision's),
            for evaluating the pretrained network itself; `num_classes` is then ignored.
    """
    adapter = get_adapter(arch)
    source = weights if isinstance(weights, WeightsSource) else resolve_weights(arch, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _construct(arch)
        if keep_head:
            load_pretrained(model, adapter, source, arch, progress=progress, keep_head=True)
        else:
            if pretrained:
                load_pretrained(model, adapter, source, arch, progress=progress)
            adapter.reset_head(model, num_classes)
    return BuiltModel(model=model, adapter=adapter, weights=source if pretrained else
                      WeightsSource("none", "none", None, source.preprocessing), arch=arch)


def skeleton(arch: str, num_classes: int | None = None) -> nn.Module:
    """`arch` on the meta device: every module, name and parameter shape, but no weights.

    Nothing is allocated or initialised, so asking a large network its layout costs
    milliseconds instead of seconds and hundreds of MB. With `num_classes`, the head is
    replaced as `build_model` does (the parameter counts of the trained network).
    """
    adapter = get_adapter(arch)
    with torch.device("meta"):
        model = _construct(arch)
        if num_classes is not None:
            adapter.reset_head(model, num_classes)
    return model


def head_name(arch: str) -> str:
    """Dotted name of `arch`'s classification head, as its adapter reads it from the structure."""
    return _layout(arch, get_adapter(arch))[0]


def block_names(arch: str) -> list[tuple[str, ...]]:
    """`arch`'s backbone blocks, input to output (`ArchAdapter.block_names`), from the
    structure alone."""
    return list(_layout(arch, get_adapter(arch))[1])


@functools.cache
def _layout(arch: str, adapter: ArchAdapter) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """Head and blocks of `arch`, once per process; keyed by the adapter too, so a name
    registered again with another adapter is read afresh."""
    model = skeleton(arch)
    return adapter.head_name(model), tuple(adapter.block_names(model))


def _construct(arch: str) -> nn.Module:
    """The one place a network is made from its name, for real or on the meta device."""
    if is_timm(arch):
        return construct_timm(arch)
    return get_model(arch, weights=None)
