"""CIFAR-10 and CIFAR-100 through torchvision: its download code and its on-disk format."""

from __future__ import annotations

from torchvision import datasets

from ftlab.config.schema import DataConfig
from ftlab.data.sources import DatasetSource, SourceSplits, data_root, register_source
from ftlab.errors import DataError

_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _loader(name: str, cls: type[datasets.CIFAR10]):
    def load(config: DataConfig) -> SourceSplits:
        root = data_root(config)
        try:
            train = cls(str(root), train=True, download=config.download)
            test = cls(str(root), train=False, download=config.download)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"{name} not found or corrupt under {root} (expected "
                            f"{root / _FOLDERS[name]}); set data.download=true to fetch it, or "
                            "data.root=PATH to a folder that holds it") from err
        except OSError as err:  # URLError is an OSError: no network
            raise DataError(f"could not download {name} into {root} ({err}); download it "
                            f"elsewhere and copy {_FOLDERS[name]}/ into {root}") from None
        return SourceSplits(train=train, train_targets=list(train.targets), test=test,
                            test_targets=list(test.targets),
                            classes=list(train.classes))

    return load


for _name, _cls in (("cifar10", datasets.CIFAR10), ("cifar100", datasets.CIFAR100)):
    register_source(DatasetSource(
        name=_name,
        load=_loader(_name, _cls),
        summary=f"{_name.upper()} (torchvision), official 50k train / 10k test",
        layout=f"ROOT/{_FOLDERS[_name]}/ (torchvision format; data.download=true fetches it)",
        folder=_FOLDERS[_name],
        in_memory=True,
    ))
