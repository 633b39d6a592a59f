"""Experiment configuration: the schema (frozen dataclasses) and how it is loaded."""

from ftlab.config.commands import DiffConfig, EvalConfig, MemoryConfig, PlanConfig
from ftlab.config.loading import (
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    flatten,
    load_config,
    load_run_config,
    replace_sections,
)
from ftlab.config.schema import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    StrategyConfig,
    SyntheticConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "DiffConfig",
    "EvalConfig",
    "ExperimentConfig",
    "MemoryConfig",
    "ModelConfig",
    "OptimConfig",
    "PlanConfig",
    "ScheduleConfig",
    "StrategyConfig",
    "SyntheticConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "flatten",
    "load_config",
    "load_run_config",
    "replace_sections",
]
