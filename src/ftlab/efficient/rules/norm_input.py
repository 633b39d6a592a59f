"""A training linear layer that reads a LayerNorm's output keeps nothing of its own: the
norm keeps its input anyway, and the layer runs the norm forward again in backward to get
its input for its weight's gradient (`recompute.NormRebuild`: the same module on the same
tensor, so the same input bit for bit).

This is the first layer of every transformer sub-block (a ViT's qkv and fc1 in full
fine-tuning, LoRA's `lora_A` beside a frozen qkv) and of a ConvNeXt MLP: stock autograd
keeps the norm's input and its output, one token-wide tensor twice. A norm elementwise pass
per layer is the price. The layer may read the norm's output through an identity (peft's
`lora_dropout` at p = 0). The norm's output is found from the layer's input by the tag a
forward hook puts on it (`tags.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.gates import RecomputedInputLinear, RecomputedInputLinearFunction
from ftlab.efficient.recompute import plain_layer_norm
from ftlab.efficient.rules.base import Rule, Site, passes_on, swap, trainable
from ftlab.efficient.tags import REBUILD_FROM, TAG_HOOK, tag_norm_outputs


class _Tokens(nn.Module):
    """Patches -> tokens; a training LayerNorm read by a training linear; a frozen
    LayerNorm read by a frozen linear and, through an identity, by a low-rank side path
    whose first layer trains (LoRA's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, stride=2)
        self.norm1 = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.norm2 = trainable(nn.LayerNorm(8), weight=False, bias=False)
        self.base = trainable(nn.Linear(8, 8), weight=False, bias=False)
        self.drop = nn.Identity()
        self.down = nn.Linear(8, 2, bias=False)
        self.up = nn.Linear(2, 8, bias=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = tokens + self.fc(self.norm1(tokens))
        normed = self.norm2(tokens)
        tokens = tokens + self.base(normed) + self.up(self.down(self.drop(normed)))
        return self.head(tokens.mean(1))


def norm_read_by(name: str, site: Site) -> nn.Module | None:
    """The plain LayerNorm whose output module `name` reads, directly or through modules
    that pass it on; None otherwise."""
    source = site.wiring.source(name)
    while source is not None and passes_on(site.modules[source]):
        source = site.wiring.source(source)
    norm = site.modules.get(source) if source is not None else None
    return norm if norm is not None and plain_layer_norm(norm) else None


class NormInput(Rule):
    name = "norm_input"
    summary = "a training linear after a LayerNorm rebuilds its input from the norm's"
    engages = (RecomputedInputLinearFunction,)
    requires = ("kept_input",)
    keeps = (REBUILD_FROM, TAG_HOOK)

    def pattern(self) -> nn.Module:
        return _Tokens()

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if type(module) is not nn.Linear or not module.weight.requires_grad:
            return None
        norm = norm_read_by(name, site)
        if norm is None:
            return None
        swap(module, RecomputedInputLinear)
        module.__dict__[REBUILD_FROM] = [norm]
        tag_norm_outputs(norm)
        return ("rebuilt_inputs",)


RULE = NormInput()
