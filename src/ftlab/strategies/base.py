"""The strategy base class and registry.

A strategy answers a few questions about a model (through its architecture adapter): which
modules to insert, which parameters train, each parameter's learning-rate multiplier, and,
for the few that need it, how that changes per epoch or what penalty joins the loss.
Freezing, param groups with absolute learning rates, norm-statistics modes and the state a
checkpoint needs live here, once, so a strategy file holds only what makes it different.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ftlab.config.schema import OptimConfig, StrategyConfig
from ftlab.config.search import FloatRange, SearchRange
from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.registry import Registry
from ftlab.strategies.options import NoOptions, option_values, parse_options

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class ParamInfo:
    """What a strategy may ask about a parameter."""

    name: str
    block: int
    """Block index from the adapter: 0 is the stem, `num_blocks` is the head."""
    num_blocks: int
    is_head: bool
    is_bias: bool
    is_norm: bool
    is_new: bool
    """Belongs to a module the strategy inserted (no pretrained value)."""


class Strategy:
    """Base class. Subclasses set the class attributes and override the hooks they need."""

    name: ClassVar[str]
    summary: ClassVar[str]
    pretrained: ClassVar[bool] = True
    """False: the backbone starts from random initialisation whatever model.weights says."""
    Options: ClassVar[type] = NoOptions
    """The frozen dataclass of this strategy's own settings (`strategy.<field>` in configs),
    with a docstring under each field and its checks in `__post_init__`."""
    search_space: ClassVar[dict[str, SearchRange]] = {
        "optim.lr": FloatRange(1e-5, 3e-3, log=True)}
    """What a hyperparameter search draws for this strategy, by config key (`optim.*`, `train.*`,
    `data.*` or this strategy's own `strategy.*` options). Strategies that train few
    parameters want far larger learning rates than full fine-tuning, so each says its own
    range; a suite file's `tune.space` overrides or extends it."""
    default_lr: ClassVar[float] = 1e-3
    """optim.lr when a config leaves it unset (Adam): each strategy's own, since one rate
    cannot suit strategies that train 0.5 % and 100 % of the parameters alike. 1e-3 was the
    best of 3e-4, 1e-3, 3e-3, 1e-2 for full, last_k and separate_lr on the mirror at 1 and 2
    epochs; head-, bias- and TinyTL-only training did best at 3e-3 (docs/strategies.md)."""
    freezes_pretrained_norm_stats: ClassVar[bool] = False
    """Default (norm_stats=auto) for pretrained norm layers that have trainable parameters:
    True keeps their running statistics fixed (eval mode)."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        self.options: Any = parse_options(self.name, self.Options, config.options,
                                          _options_of_others(self.name))
        """This strategy's `Options`, checked: typed access for the hooks below."""
        self.inserted: list[str] = []

    def resolved_config(self) -> StrategyConfig:
        """The config with every option written out (defaults included): what a run folder
        records, so it says exactly what trained."""
        return dataclasses.replace(self.config, options=option_values(self.options))

    # --- hooks -------------------------------------------------------------------------
    def insert_modules(self, model: nn.Module, adapter: ArchAdapter,
                       input_size: int) -> list[str]:
        """Add modules before anything is frozen; return their dotted names. Default: none."""
        return []

    def is_trainable(self, param: ParamInfo) -> bool:
        """Whether a parameter receives gradients now. Default: all of them."""
        return True

    def is_optimized(self, param: ParamInfo) -> bool:
        """Whether the optimizer holds it: every parameter that trains at any epoch."""
        return self.is_trainable(param)

    def lr_multiplier(self, param: ParamInfo) -> float:
        """Factor on optim.lr for an optimized parameter. Default: 1."""
        return 1.0

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (1-based) and on resume; for schedules of freezing."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to the training loss (regularisers). Default: none."""
        return None

    def export_network(self, model: nn.Module) -> nn.Module:
        """The trained network as plain modules for export, where the strategy can fold its
        own into them (PEFT methods merge their adapters into the weights they adapt);
        raises ExportError where it cannot. Default: the network as it is (TinyTL's
        branches are ordinary modules, traced like any)."""
        return model

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue this strategy exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    # --- shared machinery --------------------------------------------------------------
    def prepare(self, model: nn.Module, adapter: ArchAdapter, input_size: int = 224
                ) -> list[str]:
        """Insert modules, set the trainable set of epoch 1; return trainable names."""
        self.inserted = self.insert_modules(model, adapter, input_size)
        optimized = [info.name for info, _ in self.parameters(model, adapter)
                     if self.is_optimized(info)]
        if not optimized:
            raise ConfigError(f"strategy {self.name!r} leaves no parameter to train")
        return self.begin_epoch(1, model, adapter)

    def begin_epoch(self, epoch: int, model: nn.Module, adapter: ArchAdapter) -> list[str]:
        """Move to `epoch` and set `requires_grad` to match; return trainable names."""
        self.set_epoch(epoch)
        trainable = []
        for info, param in self.parameters(model, adapter):
            param.requires_grad_(self.is_trainable(info))
            if param.requires_grad:
                trainable.append(info.name)
        return trainable

    def parameters(self, model: nn.Module, adapter: ArchAdapter
                   ) -> Iterator[tuple[ParamInfo, nn.Parameter]]:
        """Every parameter with what strategies need to know about it."""
        norm_params = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES)
                       for p in m.parameters(recurse=False)}
        num_blocks = len(adapter.block_names(model))
        block_of = adapter.block_indexer(model)
        new_prefixes = tuple(name + "." for name in self.inserted)
        for name, param in model.named_parameters():
            block = block_of(name)
            yield ParamInfo(name=name, block=block, num_blocks=num_blocks,
                            is_head=block == num_blocks, is_bias=name.endswith("bias"),
                            is_norm=id(param) in norm_params,
                            is_new=bool(new_prefixes) and name.startswith(new_prefixes)), param

    def param_groups(self, model: nn.Module, adapter: ArchAdapter,
                     optim: OptimConfig) -> list[dict[str, Any]]:
        """Optimized parameters grouped by (learning rate, weight decay), absolute values.

        Each group carries `lr` = base rate x multiplier (`learning_rate`) and a readable
        `name`, so any torch
        scheduler works on it and logs can name it.
        """
        groups: dict[tuple[float, float], dict[str, Any]] = {}
        for info, param in self.parameters(model, adapter):
            if not self.is_optimized(info):
                continue
            multiplier = self.lr_multiplier(info)
            no_decay = optim.exclude_norm_bias_from_decay and (info.is_bias or info.is_norm
                                                                or param.ndim <= 1)
            decay = 0.0 if no_decay else optim.weight_decay
            group = groups.setdefault((multiplier, decay), {
                "params": [], "param_names": [], "lr": self.learning_rate(optim) * multiplier,
                "weight_decay": decay, "lr_multiplier": multiplier,
                "name": _group_name(multiplier, decay, optim.weight_decay)})
            group["params"].append(param)
            group["param_names"].append(info.name)
        return sorted(groups.values(), key=lambda g: (-g["lr_multiplier"], -g["weight_decay"]))

    def learning_rate(self, optim: OptimConfig) -> float:
        """The base learning rate: optim.lr, or this strategy's `default_lr` when unset."""
        return optim.lr if optim.lr is not None else self.default_lr

    def set_train_mode(self, model: nn.Module) -> None:
        """`model.train()`, then put norm layers whose statistics must not move in eval mode."""
        model.train()
        new = tuple(name + "." for name in self.inserted)
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                trainable = any(p.requires_grad for p in module.parameters(recurse=False))
                if not self._updates_statistics(trainable, bool(new) and
                                                (name + ".").startswith(new)):
                    module.eval()

    def _updates_statistics(self, trainable: bool, is_new: bool) -> bool:
        """norm_stats: update / freeze as configured; auto: the strategy's default. Inserted
        norm layers always update, since they have no pretrained statistics to keep."""
        if is_new or self.config.norm_stats == "update":
            return True
        if self.config.norm_stats == "freeze":
            return False
        return trainable and not self.freezes_pretrained_norm_stats


def _group_name(multiplier: float, decay: float, configured_decay: float) -> str:
    name = f"lr_x{multiplier:g}"
    if configured_decay > 0:
        name += "_decay" if decay > 0 else "_no_decay"
    return name


STRATEGIES: Registry[type[Strategy]] = Registry("strategy.name", "ftlab.strategies")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy under its `name`; a duplicate name is an error."""
    return STRATEGIES.register(cls.name, cls)


def get_strategy(config: StrategyConfig) -> Strategy:
    return STRATEGIES.get(config.name)(config)


def resolve_strategy_config(config: StrategyConfig) -> StrategyConfig:
    """`config` checked by its strategy, with every option written out (defaults included):
    what a run folder records, so it says exactly what trained."""
    return get_strategy(config).resolved_config()


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def strategy_class(name: str) -> type[Strategy]:
    return STRATEGIES.get(name)


def _options_of_others(name: str) -> dict[str, type]:
    return {other: STRATEGIES.get(other).Options for other in STRATEGIES.names()
            if other != name}
