"""ReLU and ReLU6 keep no copy of their input: their own output where a module reading it
keeps that anyway (a training conv), else a 1-bit mask."""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.functions import MaskedClampFunction, SharedClampFunction
from ftlab.efficient.modules import SHARE_OUTPUT, EfficientReLU, EfficientReLU6
from ftlab.efficient.rules.base import Rule, Site, conv, head, passes_on, swap

ACTIVATIONS: dict[type[nn.Module], type[nn.Module]] = {nn.ReLU: EfficientReLU,
                                                       nn.ReLU6: EfficientReLU6}


def keeps_input(module: nn.Module) -> bool:
    """Whether `module` keeps its input for backward anyway (so sharing it costs nothing)."""
    weight = getattr(module, "weight", None)
    trains = isinstance(weight, torch.Tensor) and weight.requires_grad
    if isinstance(module, (nn.Conv2d, nn.Linear)):  # planned ones too: they keep no ReLU's
        return trains  # output differently from stock
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.training or trains
    return False


def swap_relu(name: str, module: nn.Module, site: Site) -> bool:
    """Swap a ReLU/ReLU6 to its efficient class; returns whether it shares its output: it
    does where a layer reading it keeps it anyway (a training conv, directly or through an
    identity such as peft's `lora_dropout`: LoRA's first layer beside a frozen conv), and
    none rebuilds it instead (`block_rebuild`)."""
    names = _readers(name, site)
    rebuilding = site.prepared.get("block_rebuild") or {}
    share = any(keeps_input(site.modules[r]) for r in names) and \
        not any(r in rebuilding for r in names)
    swap(module, ACTIVATIONS[type(module)])
    module.__dict__[SHARE_OUTPUT] = share
    return share


def _readers(name: str, site: Site) -> list[str]:
    """The modules reading `name`'s output, looking through those that pass it on."""
    found = []
    for reader in site.wiring.readers.get(name, []):
        if passes_on(site.modules[reader]):
            found.extend(_readers(reader, site))
        else:
            found.append(reader)
    return found


class Relu(Rule):
    name = "relu"
    summary = "ReLU/ReLU6 keep a 1-bit mask or share their output"
    engages = (MaskedClampFunction, SharedClampFunction)
    keeps = (SHARE_OUTPUT,)

    def pattern(self) -> nn.Module:
        """ReLU6 read by a frozen conv (keeps a mask), ReLU read by a training conv
        (shares)."""
        return nn.Sequential(conv(3, 4), nn.BatchNorm2d(4).eval(), nn.ReLU6(inplace=True),
                             conv(4, 4, weight=False), nn.ReLU(), conv(4, 4), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if type(module) not in ACTIVATIONS:
            return None
        return ("shared_activations" if swap_relu(name, module, site)
                else "masked_activations",)


RULE = Relu()
