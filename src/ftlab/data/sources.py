"""The dataset registry: each source turns a `DataConfig` into official train and test sets.

A source returns untransformed samples `(PIL image, label)`; splitting off validation,
label fractions and transforms are applied uniformly on top by `ftlab.data.build_data`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ftlab.config.schema import DataConfig
from ftlab.fileio import user_path
from ftlab.registry import Registry


@dataclass
class SourceSplits:
    """Official splits of a dataset, before any ftlab processing.

    Attributes:
        train: Training samples `(PIL image, label)`.
        train_targets: Label of every training sample, in order (for stratified splits).
        test: Official test (or validation, where no test labels exist) samples.
        test_targets: Label of every test sample, in order.
        classes: Class names, index = label.
        class_ids: Identifiers of the classes where the dataset has them (ImageNet's
            WordNet ids); None: the names are the identifiers.
    """

    train: Dataset
    train_targets: Sequence[int]
    test: Dataset
    test_targets: Sequence[int]
    classes: list[str]
    class_ids: list[str] | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: how to load it and how to describe its expected layout."""

    name: str
    load: Callable[[DataConfig], SourceSplits]
    summary: str
    layout: str
    folder: str | None = None
    """Sub-folder of the data root that holds it, for presence checks; None: not applicable."""
    in_memory: bool = False
    """Small, equal-size images: data.pipeline=auto augments it on a CUDA device."""

    def present(self, root: Path) -> bool | None:
        return None if self.folder is None else (root / self.folder).is_dir()


SOURCES: Registry[DatasetSource] = Registry("data.name", "ftlab.datasets")


def register_source(source: DatasetSource) -> DatasetSource:
    return SOURCES.register(source.name, source)


def get_source(name: str) -> DatasetSource:
    return SOURCES.get(name)


def source_names() -> list[str]:
    return SOURCES.names()


def data_root(config: DataConfig) -> Path:
    """`data.root`, else $FTLAB_DATA, else ./data."""
    return user_path(config.root or os.environ.get("FTLAB_DATA") or "data", "data.root")
