"""Any dataset laid out as one folder per class, with or without its own test folder."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Subset
from torchvision import datasets

from ftlab.config.schema import DataConfig
from ftlab.data.sources import DatasetSource, SourceSplits, register_source
from ftlab.data.splits import stratified_split
from ftlab.data.unreadable import load_rgb
from ftlab.errors import ConfigError, DataError
from ftlab.fileio import user_path

TEST_FOLDERS = ("test", "val")


def load_imagefolder(config: DataConfig) -> SourceSplits:
    """`ROOT/train/<class>/*` + `ROOT/test/<class>/*` (or `val/`), else `ROOT/<class>/*` split.

    A single folder is split into train and test by `data.test_fraction`, stratified and
    seeded by `data.split_seed`, so the test set is fixed for every run of that root.
    """
    if config.root is None:
        raise ConfigError("data.root is required for data.name=imagefolder: the folder that "
                          "holds train/ and test/ (or one folder per class)")
    root = user_path(config.root, "data.root")
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder; expected ROOT/train/<class>/<image> "
                        "and ROOT/test/<class>/<image>, or ROOT/<class>/<image>")
    test_dir = next((root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train, test = _open(root / "train"), _open(test_dir)
        if train.classes != test.classes:
            only_train = sorted(set(train.classes) - set(test.classes))
            only_test = sorted(set(test.classes) - set(train.classes))
            raise DataError(f"class folders differ between {root / 'train'} and {test_dir}: "
                            f"only in train {only_train[:5]}, only in {test_dir.name} "
                            f"{only_test[:5]}; make both hold the same class folders")
        return SourceSplits(train=train, train_targets=list(train.targets), test=test,
                            test_targets=list(test.targets),
                            classes=list(train.classes))
    whole = _open(root)
    train_idx, test_idx = stratified_split(whole.targets, config.test_fraction, config.split_seed)
    return SourceSplits(train=Subset(whole, train_idx),
                        train_targets=[whole.targets[i] for i in train_idx],
                        test=Subset(whole, test_idx),
                        test_targets=[whole.targets[i] for i in test_idx],
                        classes=list(whole.classes))


def _open(folder: Path) -> datasets.ImageFolder:
    try:
        return datasets.ImageFolder(str(folder), loader=load_rgb)
    except (FileNotFoundError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise DataError(f"{folder} is not a usable image folder ({reason}); expected one "
                        "sub-folder per class holding .jpg/.png images") from None


register_source(DatasetSource(
    name="imagefolder",
    load=load_imagefolder,
    summary="any folder of class sub-folders; its own test/ (or val/) split, else a seeded one",
    layout="ROOT/train/<class>/<image> + ROOT/test/<class>/<image>, or ROOT/<class>/<image>",
))
