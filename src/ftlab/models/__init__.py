"""Backbones: architecture adapters, weight sources, and the model factory."""

from ftlab.models.adapters import (
    LAYER_ROLES,
    ArchAdapter,
    architectures,
    block_modules,
    count_parameters,
    get_adapter,
)
from ftlab.models.factory import BuiltModel, block_names, build_model, head_name, skeleton
from ftlab.models.weights import (
    WeightsSource,
    imagenet_classes,
    input_size,
    read_weights_file,
    resolve_weights,
)

__all__ = [
    "LAYER_ROLES",
    "ArchAdapter",
    "BuiltModel",
    "WeightsSource",
    "architectures",
    "block_modules",
    "block_names",
    "build_model",
    "count_parameters",
    "get_adapter",
    "head_name",
    "imagenet_classes",
    "input_size",
    "read_weights_file",
    "resolve_weights",
    "skeleton",
]
