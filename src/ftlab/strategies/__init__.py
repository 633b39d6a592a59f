"""Fine-tuning strategies, one per module, registered by name.

Importing this package registers every built-in strategy.
"""

from ftlab.strategies import full, scratch  # noqa: F401  (registration side effect)
from ftlab.strategies.base import (
    ParamInfo,
    Strategy,
    get_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)

__all__ = [
    "ParamInfo",
    "Strategy",
    "get_strategy",
    "register_strategy",
    "strategy_class",
    "strategy_names",
]
