"""Max pools keep one byte per output (where in its window the maximum was) instead of
their input and 8-byte indices (stock autograd keeps both: ResNet's stem pool, after the
widest feature map of the network, keeps 73.5 MiB at batch 16 and 224 px; this keeps 3.1)."""

from __future__ import annotations

from torch import nn

from ftlab.efficient.functions import WindowMaxPoolFunction, pair
from ftlab.efficient.modules import WindowMaxPool2d
from ftlab.efficient.rules.base import Rule, Site, conv, head, swap


def window_max_pool(module: nn.Module) -> bool:
    """A MaxPool2d without dilation or returned indices, whose window fits 256 places."""
    if type(module) is not nn.MaxPool2d or module.return_indices:
        return False
    kernel = pair(module.kernel_size)
    return pair(module.dilation) == (1, 1) and kernel[0] * kernel[1] <= 256


class MaxPool(Rule):
    name = "max_pool"
    summary = "max pools keep one byte per output instead of their input and indices"
    engages = (WindowMaxPoolFunction,)

    def pattern(self) -> nn.Module:
        """ResNet's stem pool (3x3, stride 2, padding 1: windows overlap), and one in ceil
        mode whose last window hangs over the edge."""
        return nn.Sequential(conv(3, 4), nn.MaxPool2d(3, 2, 1), conv(4, 4),
                             nn.MaxPool2d(3, 2, ceil_mode=True), conv(4, 4), *head(4))

    def install(self, name: str, module: nn.Module, site: Site) -> tuple[str, ...] | None:
        if not window_max_pool(module):
            return None
        swap(module, WindowMaxPool2d)
        return ("pools",)


RULE = MaxPool()
