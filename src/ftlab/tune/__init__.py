"""Hyperparameter search per strategy (`ftlab tune`): search spaces and studies."""

from ftlab.tune.space import check_key, describe, overrides_for, strategy_space

__all__ = ["check_key", "describe", "overrides_for", "strategy_space"]
