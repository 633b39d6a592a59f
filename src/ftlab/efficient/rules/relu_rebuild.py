"""A ReLU after a training BatchNorm keeps nothing: its input is rebuilt in backward by
running the norm's kernel again on the input the norm keeps anyway, and a training conv
reading its output rebuilds it the same way instead of keeping it (`gates.recipe`).

The kernels: `functions.NormClamp` / `NormClampFunction`; the norm's input is found from
its output by a forward hook's tag (`tags.py`).
"""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import NormClampFunction
from ftlab.efficient.rules.base import Rule, Site, conv, head
from ftlab.efficient.rules.relu import ACTIVATIONS, swap_relu
from ftlab.efficient.tags import REBUILD_FROM, TAG_HOOK, tag_norm_outputs


def batch_stats_norms(names: list[str], modules: dict[str, nn.Module]) -> list[nn.Module]:
    """Those of `names` that are BatchNorm2d layers normalising with batch statistics (their
    node keeps the input and the statistics); SyncBatchNorm's node keeps others."""
    return [modules[n] for n in names if type(modules[n]) is nn.BatchNorm2d
            and modules[n].training]


class ReluRebuild(Rule):
    name = "relu_rebuild"
    summary = "a ReLU after a training BatchNorm keeps nothing and rebuilds its input"
    engages = (NormClampFunction,)
    requires = ("relu",)
    keeps = (REBUILD_FROM, TAG_HOOK)

    def pattern(self) -> nn.Module:
        return nn.Sequential(conv(3, 4), nn.BatchNorm2d(4), nn.ReLU6(inplace=True),
                             conv(4, 4), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                             conv(4, 4, weight=False), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if type(module) not in ACTIVATIONS:
            return None
        norms = batch_stats_norms(site.wiring.producers(name), site.modules)
        if not norms:
            return None
        swap_relu(name, module, site)
        module.__dict__[REBUILD_FROM] = norms
        for norm in norms:
            tag_norm_outputs(norm)
        return ("rebuilt_activations",)


RULE = ReluRebuild()
