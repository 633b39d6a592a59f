"""Skips for the tests that walk every strategy: one built on an optional extra needs it,
and one made for a backbone family applies only to that family."""

from __future__ import annotations

import importlib.util

import pytest

from ftlab.strategies import strategy_class
from ftlab.strategies.peft_base import PEFT_EXTRA, PeftStrategy

VIT = "timm:vit_tiny_patch16_224"
"""The Vision Transformer the walks add to their CNNs (random weights)."""
FAMILY_ONLY = {
    "vpt": (lambda arch: arch == VIT, "VPT's prompts join a Vision Transformer's tokens"),
    "tinytl": (lambda arch: arch != VIT, "TinyTL's lite residuals attach to convolutional "
                                         "blocks"),
}
"""Strategies that apply to one kind of backbone: which archs, and why."""
BY_ROLE = ("lora", "dora", "loha", "lokr", "ia3", "oft", "ssf", "vpt")
"""Strategies that adapt layers by role (`strategy.target`) or tokens: the walks check them
on one model per family (torchvision CNNs, a timm CNN, a ViT), not on every model, to keep
the suite within its time."""
LIKE_FULL = ("separate_lr", "layer_decay", "l2sp", "scratch")
"""Strategies that train what `full` trains, in the same modes (test_memory checks it): they
differ from it in learning rates, a penalty or initial values, none of which a memory plan
reads, so the gradient walks check them on `ONE_PER_FAMILY` only, as `full` is on every
model."""
ONE_PER_FAMILY = ("mobilenet_v2", "resnet18", "timm:convnext_atto", VIT)
VIT_STRATEGIES = ("full", "bias", "last_k", "linear_probe", "norm_last", "layer_decay",
                  *BY_ROLE)
"""The strategies the walks train on a ViT: those the ViT work names, and the new ones."""


def walk(names: list[str], archs: list[str]) -> list[tuple[str, str]]:
    """(strategy, arch) pairs for a walk over `archs`: role-based strategies and those
    `LIKE_FULL` on `ONE_PER_FAMILY` only, the ViT with `VIT_STRATEGIES` only."""
    return [(name, arch) for name in names for arch in archs
            if (name not in BY_ROLE + LIKE_FULL or arch in ONE_PER_FAMILY)
            and (arch != VIT or name in VIT_STRATEGIES)]


def needs_extra(strategy: str, arch: str | None = None) -> None:
    """Skip, with the reason, where `strategy` needs peft and peft is missing, or does not
    apply to `arch`."""
    if issubclass(strategy_class(strategy), PeftStrategy) and \
            importlib.util.find_spec("peft") is None:
        pytest.skip(f"strategy {strategy} needs peft, which is not installed ({PEFT_EXTRA})")
    if arch is not None and strategy in FAMILY_ONLY and not FAMILY_ONLY[strategy][0](arch):
        pytest.skip(f"{FAMILY_ONLY[strategy][1]}, not {arch}'s")
