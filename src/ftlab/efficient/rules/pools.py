"""Average pools that tile their input, and global average pools, keep only its shape
(stock autograd keeps the whole input to learn its size)."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import BlockAvgPoolFunction, GlobalAvgPoolFunction
from ftlab.efficient.modules import ShapeAvgPool2d, ShapeGlobalAvgPool2d
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap


def block_pool(module: nn.Module) -> bool:
    """An AvgPool2d whose windows tile the input: kernel = stride, no padding, floor mode."""
    if type(module) is not nn.AvgPool2d:
        return False
    kernel, stride = module.kernel_size, module.stride or module.kernel_size
    return (isinstance(kernel, int) and kernel == stride and module.padding == 0
            and not module.ceil_mode and module.divisor_override is None)


def global_pool(module: nn.Module) -> bool:
    return type(module) is nn.AdaptiveAvgPool2d and module.output_size in (1, (1, 1))


class Pools(Rule):
    name = "pools"
    summary = "average pools keep only their input's shape"
    engages = (BlockAvgPoolFunction, GlobalAvgPoolFunction)

    def pattern(self) -> nn.Module:
        return nn.Sequential(conv(3, 4), nn.AvgPool2d(2), conv(4, 4), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if block_pool(module):
            swap(module, ShapeAvgPool2d)
        elif global_pool(module):
            swap(module, ShapeGlobalAvgPool2d)
        else:
            return None
        return ("pools",)


RULE = Pools()
