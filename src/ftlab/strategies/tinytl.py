"""TinyTL: lite-residual side branches and/or biases, plus a new head, on a frozen backbone."""

from __future__ import annotations

from torch import nn

from dataclasses import dataclass

from ftlab.config.schema import check_choice, check_number, fail
from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.config.search import FloatRange
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy
from ftlab.strategies.lite_residual import LiteResidual, add_to_output, probe_shapes

BRANCH = "lite_residual"
VARIANTS = ("L", "B", "L+B")


@dataclass(frozen=True)
class TinyTLOptions:
    variant: str = "L+B"
    """L (lite-residual branches), B (biases) or L+B."""
    n_groups: int = 2
    """Groups of the side branch's k x k convolution."""
    kernel_size: int = 5
    """The side branch's kernel, reduced where the feature map is smaller."""
    expand: float = 1.0
    """Side-branch width as a multiple of the block's input channels."""
    group_width: int = 0
    """Channels per group of the k x k convolution (0: `n_groups` groups). With a group
    width the branches' parameters grow linearly with the blocks' width, not with its
    square: the setting for wide backbones (ConvNeXt, ResNet-50, RegNet)."""

    def __post_init__(self) -> None:
        check_choice("strategy.variant", self.variant, VARIANTS)
        check_number("strategy.n_groups", self.n_groups, low=1, high=1024)
        check_number("strategy.kernel_size", self.kernel_size, low=1, high=15)
        if self.kernel_size % 2 == 0:
            fail("strategy.kernel_size", self.kernel_size, "an odd number")
        check_number("strategy.expand", self.expand, low=0.0, high=16.0, low_open=True)
        check_number("strategy.group_width", self.group_width, low=0, high=4096)


@register_strategy
class TinyTL(Strategy):
    """Cai et al., NeurIPS 2020. Variants: `L` trains the side branches, `B` every bias
    (norm β included), `L+B` both. With biases training, each branch's final norm bias stays
    at zero, as in TinyTL's code, since the block's own bias already shifts that output.

    Pretrained norm layers keep their running statistics by default (norm_stats=auto): a
    frozen network's statistics are part of what it learned, and it is what lets memory-
    efficient training drop their saved inputs. The branches' own norms always update.
    """

    name = "tinytl"
    summary = "TinyTL: lite-residual side branches (L), biases (B) or both (L+B), + head"
    Options = TinyTLOptions
    default_lr = 3e-3  # measured: docs/strategies.md, Default learning rates
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}
    freezes_pretrained_norm_stats = True

    @property
    def branches(self) -> bool:
        return "L" in self.options.variant

    @property
    def biases(self) -> bool:
        return "B" in self.options.variant

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter, input_size: int
                       ) -> list[str]:
        if not self.branches:
            return []
        blocks = adapter.residual_blocks(model)
        if not blocks:
            raise ConfigError(f"strategy tinytl (variant {self.options.variant}) cannot apply to "
                              f"{type(model).__name__}: its adapter knows no residual blocks "
                              "to attach lite-residual branches to; use strategy.variant=B")
        shapes = probe_shapes(model, blocks, input_size)
        inserted = []
        for name in blocks:
            (_, c_in, h_in, _), (_, c_out, h_out, _) = shapes[name]
            block = model.get_submodule(name)
            block.add_module(BRANCH, LiteResidual(
                c_in, c_out, stride=max(1, h_in // h_out), input_size=h_in,
                kernel_size=self.options.kernel_size, groups=self.options.n_groups,
                expand=self.options.expand, group_width=self.options.group_width))
            block.register_forward_hook(add_to_output)
            inserted.append(f"{name}.{BRANCH}")
        return inserted

    def is_trainable(self, param: ParamInfo) -> bool:
        if param.is_head:
            return True
        if param.is_new:
            return not (self.biases and param.name.endswith("final_bn.bias"))
        return self.biases and param.is_bias
