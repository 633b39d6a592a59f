"""Sparse update (Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022): the
biases of the last blocks and the weights of a few chosen layers, or of a fraction of
their output channels, train; everything else stays frozen and keeps nothing for backward."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ftlab.config.schema import check_number, fail
from ftlab.config.search import FloatRange
from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.models.partial import DELTA, PartialConv2d, PartialLinear, make_partial, merged
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class SparseUpdateOptions:
    bias_blocks: int = 6
    """The biases (norm β included) of the last N backbone blocks train; 0: none."""
    weight_blocks: int = 2
    """Without `weights`: the convolutions (groups 1) and linear layers of the last M
    backbone blocks update `weight_fraction` of their output channels; 0: no weights."""
    weight_fraction: float = 0.25
    """Share of a chosen layer's output channels (the first ones) whose weights train."""
    weights: list[str] = field(default_factory=list)
    """The layers whose weights train, exactly: "LAYER:FRACTION" entries, LAYER a conv or
    linear layer's dotted name (`ftlab arch --model ARCH` lists them), FRACTION in (0, 1]
    of its output channels (a grouped conv trains all of its own). Given, it replaces
    weight_blocks and weight_fraction."""

    def __post_init__(self) -> None:
        check_number("strategy.bias_blocks", self.bias_blocks, low=0, high=10_000)
        check_number("strategy.weight_blocks", self.weight_blocks, low=0, high=10_000)
        check_number("strategy.weight_fraction", self.weight_fraction, low=0.0, high=1.0,
                     low_open=True)
        parsed = [_entry(item) for item in self.weights]
        if len({name for name, _ in parsed}) != len(parsed):
            fail("strategy.weights", list(self.weights), "each layer once")


def _entry(item: str) -> tuple[str, float]:
    name, sep, fraction = str(item).rpartition(":")
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if not sep or not name or not 0.0 < value <= 1.0:
        fail("strategy.weights", item, "entries LAYER:FRACTION with FRACTION in (0, 1], e.g. "
             "features.17.conv.2:0.25")
    return name, value


@register_strategy
class SparseUpdate(Strategy):
    """Trains the head, the biases of the last `bias_blocks` blocks and, of each chosen
    layer, the weights of its first output channels (as an update of their own,
    `<layer>.sparse_delta`, zero at the start). The scheme comes from `weights`, else from
    the weight_blocks / weight_fraction rule. Pretrained norm layers keep their statistics
    (as bias-only training does), which is what lets the frozen layers keep nothing.
    Memory-efficient execution computes each chosen layer's weight gradient for its
    updated channels only. Export merges the updates into the weights."""

    name = "sparse_update"
    summary = ("biases of the last blocks and a fraction of chosen layers' weights "
               "(tiny-training's sparse update), + head")
    Options = SparseUpdateOptions
    default_lr = 3e-3  # bias-only's rate: the update is mostly biases
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}
    freezes_pretrained_norm_stats = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.scheme: dict[str, int] = {}
        """Layer name -> output channels whose weights train (set in `insert_modules`)."""

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter,
                       input_size: int) -> list[str]:
        chosen = self.chosen_layers(model, adapter)
        for name, fraction in chosen.items():
            self.scheme[name] = make_partial(model.get_submodule(name), fraction)
        return []

    def chosen_layers(self, model: nn.Module, adapter: ArchAdapter) -> dict[str, float]:
        """Layer -> fraction, from `weights` (checked against the model) or the rule."""
        layers = updatable_layers(model, adapter)
        if self.options.weights:
            chosen = dict(_entry(item) for item in self.options.weights)
            unknown = [name for name in chosen if name not in layers]
            if unknown:
                raise ConfigError(
                    f"strategy.weights names {unknown[0]!r}, which is not a conv or linear "
                    f"layer of the backbone ({len(layers)} are, e.g. "
                    f"{', '.join(list(layers)[-3:])}); `ftlab arch` lists them")
            return chosen
        last = len(adapter.block_names(model)) - self.options.weight_blocks
        return {name: self.options.weight_fraction for name, block in layers.items()
                if block >= last and _ungrouped(model.get_submodule(name))}

    def is_trainable(self, param: ParamInfo) -> bool:
        if param.is_head or param.name.endswith("." + DELTA):
            return True
        return param.is_bias and param.block >= param.num_blocks - self.options.bias_blocks

    def export_network(self, model: nn.Module) -> nn.Module:
        for name, module in list(model.named_modules()):
            if not isinstance(module, (PartialConv2d, PartialLinear)):
                continue
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, merged(module))
        return model


def updatable_layers(model: nn.Module, adapter: ArchAdapter) -> dict[str, int]:
    """The backbone's conv (zero padding) and linear layers by name, with their block (the
    head, which trains whole, is not among them)."""
    block_of = adapter.block_indexer(model)
    head = len(adapter.block_names(model))
    layers = {}
    for name, module in model.named_modules():
        if type(module) in (nn.Conv2d, nn.Linear) and block_of(f"{name}.weight") < head:
            if isinstance(module, nn.Linear) or module.padding_mode == "zeros":
                layers[name] = block_of(f"{name}.weight")
    return layers


def _ungrouped(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or module.groups == 1
