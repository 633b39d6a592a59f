"""Backbones: architecture adapters, weight sources, and the model factory."""

from ftlab.models.adapters import ArchAdapter, architectures, count_parameters, get_adapter
from ftlab.models.factory import BuiltModel, build_model
from ftlab.models.weights import WeightsSource, read_weights_file, resolve_weights

__all__ = [
    "ArchAdapter",
    "BuiltModel",
    "WeightsSource",
    "architectures",
    "build_model",
    "count_parameters",
    "get_adapter",
    "read_weights_file",
    "resolve_weights",
]
