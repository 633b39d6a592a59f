"""The strategy base class and registry.

A strategy answers three questions about a model (through its architecture adapter): which
modules to insert, which parameters train, and each parameter's learning-rate multiplier.
Freezing, building param groups with absolute learning rates, and setting train/eval modes
live here, once, so a strategy file holds only what makes it different.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ftlab.config.schema import OptimConfig, StrategyConfig
from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.registry import Registry

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class ParamInfo:
    """What a strategy may ask about a parameter."""

    name: str
    block: int
    """Block index from the adapter; the head is `num_blocks`."""
    num_blocks: int
    is_head: bool
    is_bias: bool
    is_norm: bool


class Strategy:
    """Base class. Subclasses set `name`/`summary` and override the hooks they need."""

    name: ClassVar[str]
    summary: ClassVar[str]
    pretrained: ClassVar[bool] = True
    """False: the backbone starts from random initialisation whatever model.weights says."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    # --- hooks -------------------------------------------------------------------------
    def insert_modules(self, model: nn.Module, adapter: ArchAdapter) -> None:
        """Add modules (side branches, adapters) before anything is frozen. Default: none."""

    def is_trainable(self, param: ParamInfo) -> bool:
        """Whether a parameter receives gradients. Default: all of them."""
        return True

    def lr_multiplier(self, param: ParamInfo) -> float:
        """Factor on optim.lr for a trainable parameter. Default: 1."""
        return 1.0

    def norm_statistics_update(self, module: nn.Module, trainable: bool) -> bool:
        """Whether a norm layer's running statistics update in training mode.

        Default: they update exactly when the layer has trainable parameters, so a frozen
        backbone keeps the statistics it was pretrained with (a true feature extractor).
        """
        return trainable

    # --- shared machinery --------------------------------------------------------------
    def prepare(self, model: nn.Module, adapter: ArchAdapter) -> list[str]:
        """Insert modules, freeze what does not train; return trainable parameter names."""
        self.insert_modules(model, adapter)
        trainable_names = []
        for info, param in self.parameters(model, adapter):
            param.requires_grad_(self.is_trainable(info))
            if param.requires_grad:
                trainable_names.append(info.name)
        if not trainable_names:
            raise ConfigError(f"strategy {self.name!r} leaves no parameter to train")
        return trainable_names

    def parameters(self, model: nn.Module, adapter: ArchAdapter
                   ) -> Iterator[tuple[ParamInfo, nn.Parameter]]:
        """Every parameter with what strategies need to know about it."""
        norm_params = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES)
                       for p in m.parameters(recurse=False)}
        num_blocks = len(adapter.block_names(model))
        block_of = adapter.block_indexer(model)
        for name, param in model.named_parameters():
            block = block_of(name)
            yield ParamInfo(
                name=name,
                block=block,
                num_blocks=num_blocks,
                is_head=block == num_blocks,
                is_bias=name.endswith("bias"),
                is_norm=id(param) in norm_params,
            ), param

    def param_groups(self, model: nn.Module, adapter: ArchAdapter,
                     optim: OptimConfig) -> list[dict[str, Any]]:
        """Trainable parameters grouped by (learning rate, weight decay), with absolute values.

        Each group carries `lr` = optim.lr x multiplier and a readable `name`, so any torch
        scheduler works on it and logs can name it.
        """
        groups: dict[tuple[float, float], dict[str, Any]] = {}
        for info, param in self.parameters(model, adapter):
            if not param.requires_grad:
                continue
            multiplier = self.lr_multiplier(info)
            no_decay = optim.exclude_norm_bias_from_decay and (info.is_bias or info.is_norm
                                                                or param.ndim <= 1)
            decay = 0.0 if no_decay else optim.weight_decay
            key = (multiplier, decay)
            if key not in groups:
                groups[key] = {"params": [], "param_names": [], "lr": optim.lr * multiplier,
                               "weight_decay": decay, "lr_multiplier": multiplier,
                               "name": _group_name(multiplier, decay, optim.weight_decay)}
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(info.name)
        return sorted(groups.values(), key=lambda g: (-g["lr_multiplier"], -g["weight_decay"]))

    def set_train_mode(self, model: nn.Module) -> None:
        """`model.train()`, then put norm layers whose statistics must not move in eval mode."""
        model.train()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                trainable = any(p.requires_grad for p in module.parameters(recurse=False))
                if not self.norm_statistics_update(module, trainable):
                    module.eval()


def _group_name(multiplier: float, decay: float, configured_decay: float) -> str:
    name = f"lr_x{multiplier:g}"
    if configured_decay > 0:
        name += "_decay" if decay > 0 else "_no_decay"
    return name


STRATEGIES: Registry[type[Strategy]] = Registry("strategy.name")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy under its `name`; a duplicate name is an error."""
    return STRATEGIES.register(cls.name, cls)


def get_strategy(config: StrategyConfig) -> Strategy:
    return STRATEGIES.get(config.name)(config)


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def strategy_class(name: str) -> type[Strategy]:
    return STRATEGIES.get(name)
