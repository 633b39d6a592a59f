"""TinyTL: lite-residual side branches and/or biases, plus a new head, on a frozen backbone."""

from __future__ import annotations

from torch import nn

from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy
from ftlab.strategies.lite_residual import LiteResidual, add_to_output, probe_shapes

BRANCH = "lite_residual"


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
    options = ("variant", "n_groups", "kernel_size", "expand")
    freezes_pretrained_norm_stats = True

    @property
    def branches(self) -> bool:
        return "L" in self.config.variant

    @property
    def biases(self) -> bool:
        return "B" in self.config.variant

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter, input_size: int
                       ) -> list[str]:
        if not self.branches:
            return []
        blocks = adapter.residual_blocks(model)
        if not blocks:
            raise ConfigError(f"strategy tinytl (variant {self.config.variant}) cannot apply to "
                              f"{type(model).__name__}: its adapter knows no residual blocks "
                              "to attach lite-residual branches to; use strategy.variant=B")
        shapes = probe_shapes(model, blocks, input_size)
        inserted = []
        for name in blocks:
            (_, c_in, h_in, _), (_, c_out, h_out, _) = shapes[name]
            block = model.get_submodule(name)
            block.add_module(BRANCH, LiteResidual(
                c_in, c_out, stride=max(1, h_in // h_out), input_size=h_in,
                kernel_size=self.config.kernel_size, groups=self.config.n_groups,
                expand=self.config.expand))
            block.register_forward_hook(add_to_output)
            inserted.append(f"{name}.{BRANCH}")
        return inserted

    def is_trainable(self, param: ParamInfo) -> bool:
        if param.is_head:
            return True
        if param.is_new:
            return not (self.biases and param.name.endswith("final_bn.bias"))
        return self.biases and param.is_bias
