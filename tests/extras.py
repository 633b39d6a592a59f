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


def needs_extra(strategy: str, arch: str | None = None) -> None:
    """Skip, with the reason, where `strategy` needs peft and peft is missing, or does not
    apply to `arch`."""
    if issubclass(strategy_class(strategy), PeftStrategy) and \
            importlib.util.find_spec("peft") is None:
        pytest.skip(f"strategy {strategy} needs peft, which is not installed ({PEFT_EXTRA})")
    if arch is not None and strategy in FAMILY_ONLY and not FAMILY_ONLY[strategy][0](arch):
        pytest.skip(f"{FAMILY_ONLY[strategy][1]}, not {arch}'s")
