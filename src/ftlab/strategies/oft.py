"""OFT: an orthogonal rotation of each adapted layer's input channels, learned per block
(Qiu et al., NeurIPS 2023), through peft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ftlab.config.schema import check_number
from ftlab.config.search import Choice, FloatRange
from ftlab.errors import ConfigError
from ftlab.strategies.base import register_strategy
from ftlab.strategies.peft_base import PeftStrategy
from ftlab.strategies.targets import TargetOptions


@dataclass(frozen=True)
class OftOptions(TargetOptions):
    block_size: int = 8
    """Channels per orthogonal block: the rotation is block-diagonal, each block a learned
    orthogonal matrix (Cayley-parametrised). It must divide each adapted layer's input
    channels. OFT adapts 1x1 convolutions and linear layers (`auto` leaves the others
    out, with a warning)."""
    dropout: float = 0.0
    """Module dropout: each step skips a layer's rotation with this probability."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("strategy.block_size", self.block_size, low=1, high=4096)
        check_number("strategy.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


@register_strategy
class Oft(PeftStrategy):
    """W' = W R with R block-diagonal orthogonal (blocks of `strategy.block_size`), which
    keeps the angles between the layer's neurons (its hyperspherical energy) as pretrained;
    plus the new head."""

    name = "oft"
    method = "OFT"
    summary = "OFT: block-orthogonal rotations of the targeted layers' inputs, + head"
    Options = OftOptions
    default_lr = 1e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 1e-2, log=True),
                    "strategy.block_size": Choice((4, 8, 16))}

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        return peft.OFTConfig(r=0, oft_block_size=self.options.block_size,
                              module_dropout=self.options.dropout, target_modules=targets)

    def check_layer(self, name: str, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) != (1, 1):
            raise ConfigError(f"strategy oft adapts 1x1 convolutions and linear layers only, "
                              f"not {name} ({module.kernel_size[0]}x{module.kernel_size[1]}): "
                              "peft's OFT rotates a larger kernel's input patches without the "
                              "layer's padding; use strategy.target=pointwise (or mlp, qkv, "
                              "proj)")
        size = (module.in_channels // module.groups) if isinstance(module, nn.Conv2d) else \
            module.in_features  # type: ignore[union-attr]
        if size % self.options.block_size:
            raise ConfigError(f"strategy.block_size={self.options.block_size} does not divide "
                              f"the input size {size} of layer {name} that strategy oft "
                              "adapts; choose a block size dividing it (a power of two "
                              "suits most networks) or leave that role out of "
                              "strategy.target")
