"""Where a LayerNorm feeds a frozen layer whose only reader is a smooth activation (the MLP
of a frozen ConvNeXt block), the activation keeps the norm's input instead of its own and
rebuilds its input in backward, within a budget of extra multiply-adds (`recompute.py`:
the kernels and the choice; `tags.py`: how the norm's input is found from the activation's
input)."""

from __future__ import annotations

import torch
from torch import nn

from ftlab.efficient.gates import gated_activation
from ftlab.efficient.recompute import RECOMPUTE, RecomputedActivation, choose, plain_layer_norm
from ftlab.efficient.rules.base import Rule, Site, swap, trainable
from ftlab.efficient.rules.frozen_conv import frozen_conv
from ftlab.efficient.rules.frozen_linear import frozen_linear
from ftlab.efficient.tags import TAG_HOOK, carry_tags, tag_norm_outputs


class _TokenMLP(nn.Module):
    """Patches -> tokens -> LayerNorm -> frozen fc1 -> GELU -> frozen fc2, as in a frozen
    ConvNeXt block (biases train)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, stride=2)
        self.norm = trainable(nn.LayerNorm(8), weight=False)
        self.fc1 = trainable(nn.Linear(8, 16), weight=False)
        self.act = nn.GELU()
        self.fc2 = trainable(nn.Linear(16, 8), weight=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.fc2(self.act(self.fc1(self.norm(tokens)))).mean(1))


class RecomputeMlp(Rule):
    name = "recompute_mlp"
    summary = "the GELU of a frozen MLP rebuilds its input from its LayerNorm's"
    engages = (RecomputedActivation,)
    requires = ("frozen_linear", "kept_input")
    keeps = (RECOMPUTE, TAG_HOOK)

    def pattern(self) -> nn.Module:
        return _TokenMLP()

    def prepare(self, site: Site) -> dict[str, tuple[nn.Module, nn.Module]]:
        """activation -> (norm, frozen layer) for the activations `recompute.choose` picks
        among those fed by norm -> frozen conv/linear -> activation alone."""
        wiring, modules = site.wiring, site.modules
        pairs, candidates = {}, []
        for name, module in modules.items():
            layer = wiring.producer(name) if gated_activation(module) is not None else None
            norm = wiring.producer(layer) if layer is not None else None
            if norm is None or not plain_layer_norm(modules[norm]) or layer not in \
                    wiring.sizes or not (frozen_conv(modules[layer])
                                         or frozen_linear(modules[layer])):
                continue
            pairs[name] = (modules[norm], modules[layer])
            candidates.append((name, *wiring.sizes[layer]))
        total = sum(macs for _, macs in wiring.sizes.values())
        return {name: pairs[name] for name in choose(candidates, total, site.recompute_budget)}

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        pair = site.prepared[self.name].get(name)
        if pair is None:
            return None
        swap(module, gated_activation(module))
        module.__dict__[RECOMPUTE] = pair
        norm, layer = pair
        tag_norm_outputs(norm)
        carry_tags(layer)
        return ("recomputed",)


RULE = RecomputeMlp()
