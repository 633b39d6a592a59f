"""Datasets by name, their splits, transforms and loaders.

`build_data` is the one entry point: official train/test from the named source, a stratified
validation split carved from train, an optional label fraction, and transforms that follow
the weights' preprocessing unless the config overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftlab.config.schema import DataConfig
from ftlab.data import (  # noqa: F401  (registration)
    cifar,
    cub,
    imagefolder,
    synthetic,
    torchvision_sets,
)
from ftlab.data.augment import (
    AUGMENTATIONS,
    AUTO_RULE,
    Augmentation,
    augmentation_names,
    check_augment,
    choose_augment,
    choose_eval_crop,
)
from ftlab.data.batches import BatchSource, LoaderBatches
from ftlab.data.device_pipeline import DeviceBatches, in_memory
from ftlab.data.loading import (
    SeededShuffleSampler,
    TransformedSubset,
    default_workers,
    epoch_seed,
    eval_loader,
    train_loader,
)
from ftlab.data.sources import DatasetSource, SourceSplits, get_source, source_names
from ftlab.data.splits import label_subset, stratified_split
from ftlab.data.transforms import InputSpec, eval_transform, resolve_input, train_transform
from ftlab.data.unreadable import DAMAGE, NotRegularFile, load_rgb, sample_path
from ftlab.errors import DataError
from ftlab.preprocessing import Preprocessing


@dataclass
class DataBundle:
    """The three splits of a run, transformed, and what describes them."""

    train: TransformedSubset
    val: TransformedSubset | None
    test: TransformedSubset
    classes: list[str]
    input: InputSpec
    augmentation: Augmentation
    """What the training split's transform does (data.augment, resolved)."""
    class_ids: list[str] | None = None
    """Identifiers of the classes (ImageNet's WordNet ids); None: the names are."""

    @property
    def ids(self) -> list[str]:
        """What identifies each class when matching it to a pretrained head's outputs."""
        return self.class_ids or self.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val else 0,
                "test": len(self.test)}


def build_data(config: DataConfig, weights: Preprocessing, *, epochs: int = 1) -> DataBundle:
    """Load the named dataset and carve train / val / test from its official splits.

    Args:
        epochs: the training budget that `data.augment=auto` is chosen for (a resolved run
            config names its augmentation already; evaluation never augments).
    """
    source = get_source(config.name).load(config)
    targets = list(source.train_targets)
    train_idx, val_idx = stratified_split(targets, config.val_fraction, config.split_seed)
    if config.label_fraction < 1.0:
        kept = label_subset([targets[i] for i in train_idx], config.label_fraction,
                            config.split_seed + 1)
        train_idx = [train_idx[i] for i in kept]
    if len(train_idx) < 2:
        raise DataError(f"{config.name} leaves {len(train_idx)} training image(s) after the "
                        "validation split; lower data.val_fraction or add images")
    spec = resolve_input(config, weights)
    augmentation = choose_augment(config, epochs)
    train_tf, eval_tf = train_transform(config, spec, augmentation), eval_transform(spec)
    policy = config.bad_images
    return DataBundle(
        train=TransformedSubset(source.train, train_idx, train_tf, [targets[i] for i in train_idx],
                                policy),
        val=TransformedSubset(source.train, val_idx, eval_tf, [targets[i] for i in val_idx],
                              policy) if val_idx else None,
        test=TransformedSubset(source.test, range(len(source.test)), eval_tf,  # type: ignore[arg-type]
                               source.test_targets, policy),
        classes=source.classes,
        input=spec,
        augmentation=augmentation,
        class_ids=source.class_ids,
    )


__all__ = [
    "AUGMENTATIONS",
    "AUTO_RULE",
    "Augmentation",
    "DAMAGE",
    "NotRegularFile",
    "BatchSource",
    "DataBundle",
    "DatasetSource",
    "DeviceBatches",
    "InputSpec",
    "LoaderBatches",
    "SeededShuffleSampler",
    "SourceSplits",
    "TransformedSubset",
    "augmentation_names",
    "build_data",
    "check_augment",
    "choose_augment",
    "choose_eval_crop",
    "default_workers",
    "epoch_seed",
    "eval_transform",
    "eval_loader",
    "get_source",
    "in_memory",
    "label_subset",
    "load_rgb",
    "resolve_input",
    "sample_path",
    "source_names",
    "stratified_split",
    "train_loader",
]
