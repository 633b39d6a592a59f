"""Fine-tuning strategies, one per module, registered by name.

Importing this package registers every built-in strategy; strategies of installed packages
join through the `ftlab.strategies` entry-point group on the first lookup (see
docs/plugins.md). A strategy is one file: a `Strategy` subclass with its `Options`
dataclass, registered with `@register_strategy`.
"""

from ftlab.strategies import (  # noqa: F401  (registration side effect)
    bias,
    dora,
    full,
    gradual_unfreeze,
    ia3,
    l2sp,
    last_k,
    layer_decay,
    linear_probe,
    loha,
    lokr,
    lora,
    norm_last,
    oft,
    scratch,
    separate_lr,
    sparse_update,
    ssf,
    tinytl,
    vpt,
)
from ftlab.strategies.base import (
    ParamInfo,
    Strategy,
    get_strategy,
    register_strategy,
    resolve_strategy_config,
    strategy_class,
    strategy_names,
)
from ftlab.strategies.options import NoOptions, option_values, plain
from ftlab.strategies.recipe import PreparedModel, prepare_model
from ftlab.strategies.separate_lr import LrRule

__all__ = [
    "LrRule",
    "NoOptions",
    "ParamInfo",
    "PreparedModel",
    "Strategy",
    "get_strategy",
    "option_values",
    "plain",
    "prepare_model",
    "register_strategy",
    "resolve_strategy_config",
    "strategy_class",
    "strategy_names",
]
