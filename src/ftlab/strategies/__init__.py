"""Fine-tuning strategies, one per module, registered by name.

Importing this package registers every built-in strategy.
"""

from ftlab.strategies import (  # noqa: F401  (registration side effect)
    bias,
    full,
    gradual_unfreeze,
    l2sp,
    last_k,
    layer_decay,
    linear_probe,
    norm_last,
    scratch,
    separate_lr,
    tinytl,
)
from ftlab.strategies.base import (
    ParamInfo,
    Strategy,
    get_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)
from ftlab.strategies.recipe import PreparedModel, prepare_model

__all__ = [
    "ParamInfo",
    "PreparedModel",
    "Strategy",
    "get_strategy",
    "prepare_model",
    "register_strategy",
    "strategy_class",
    "strategy_names",
]
