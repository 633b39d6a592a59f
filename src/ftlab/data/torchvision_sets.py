"""Fine-grained and large benchmarks through torchvision's own dataset classes.

Each is loaded with torchvision's loader and its official split; where a benchmark ships a
separate validation split (Flowers-102, FGVC-Aircraft, Oxford-IIIT Pets), it joins the
training set, as in the TinyTL and Transfer-Learning-Library benchmarks, and ftlab carves its
own seeded validation split from the union.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets

from ftlab.config.schema import DataConfig
from ftlab.data.sources import DatasetSource, SourceSplits, data_root, register_source
from ftlab.errors import DataError


@dataclass(frozen=True)
class TorchvisionSet:
    """How one torchvision dataset class maps onto ftlab's train/test splits."""

    name: str
    cls: type[Dataset]
    train_splits: tuple[str, ...]
    test_split: str
    folder: str
    summary: str
    how_to_get: str
    downloadable: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)

    def open(self, config: DataConfig, split: str) -> Dataset:
        root = data_root(config)
        extra = dict(self.kwargs)
        if self.downloadable:
            extra["download"] = config.download
        try:
            return self.cls(str(root), split=split, **extra)
        except RuntimeError as err:  # torchvision: "Dataset not found (or corrupted)"
            raise DataError(f"{self.name} not found or incomplete under {root} (expected "
                            f"{root / self.folder}); {self.how_to_get}") from err
        except OSError as err:  # a failed download (URLError) or an unreadable index file
            raise DataError(f"could not load {self.name} from {root} ({err}); "
                            f"{self.how_to_get}") from None

    def load(self, config: DataConfig) -> SourceSplits:
        parts = [self.open(config, split) for split in self.train_splits]
        test = self.open(config, self.test_split)
        train: Dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        ids = getattr(parts[0], "wnids", None)  # ImageNet's WordNet ids, in label order
        return SourceSplits(train=train, train_targets=[t for p in parts for t in targets(p)],
                            test=test, test_targets=targets(test), classes=class_names(parts[0]),
                            class_ids=list(ids) if ids is not None else None)


def targets(dataset: Dataset) -> list[int]:
    """Labels of a torchvision dataset without opening its images."""
    for attribute in ("targets", "_labels"):
        if hasattr(dataset, attribute):
            return [int(t) for t in getattr(dataset, attribute)]
    if hasattr(dataset, "_samples"):
        return [int(label) for _, label in dataset._samples]  # type: ignore[attr-defined]
    raise TypeError(f"{type(dataset).__name__} exposes no labels")


def class_names(dataset: Dataset) -> list[str]:
    names: Sequence[Any] = dataset.classes
    # ImageNet's classes are tuples of synonyms: the first is the common name.
    return [n[0] if isinstance(n, tuple) else str(n) for n in names]


_DOWNLOAD = "set data.download=true to fetch it, or data.root=PATH to a folder that holds it"

SETS = [
    TorchvisionSet("food101", datasets.Food101, ("train",), "test", "food-101",
                   "Food-101 (torchvision), official 75,750 train / 25,250 test, 101 classes",
                   _DOWNLOAD),
    TorchvisionSet("flowers102", datasets.Flowers102, ("train", "val"), "test", "flowers-102",
                   "Oxford Flowers-102 (torchvision), train+val 2,040 / test 6,149, 102 classes",
                   _DOWNLOAD),
    TorchvisionSet("pets", datasets.OxfordIIITPet, ("trainval",), "test", "oxford-iiit-pet",
                   "Oxford-IIIT Pets (torchvision), trainval 3,680 / test 3,669, 37 classes",
                   _DOWNLOAD),
    TorchvisionSet("aircraft", datasets.FGVCAircraft, ("trainval",), "test",
                   "fgvc-aircraft-2013b",
                   "FGVC-Aircraft variants (torchvision), trainval 6,667 / test 3,333, 100 classes",
                   _DOWNLOAD, kwargs={"annotation_level": "variant"}),
    TorchvisionSet("cars196", datasets.StanfordCars, ("train",), "test", "stanford_cars",
                   "Stanford Cars (torchvision layout), 8,144 train / 8,041 test, 196 classes",
                   "its original download site is gone and torchvision cannot fetch it: get "
                   "the Stanford Cars files (e.g. from Kaggle, 'stanford-cars-dataset' plus "
                   "cars_test_annos_withlabels.mat) and lay them out as ROOT/stanford_cars/"
                   "{cars_train/, cars_test/, devkit/cars_meta.mat, devkit/cars_train_annos.mat, "
                   "cars_test_annos_withlabels.mat}", downloadable=False),
    TorchvisionSet("imagenet", datasets.ImageNet, ("train",), "val", "train",
                   "ImageNet-1k (torchvision layout), 1.28M train / 50k val as test",
                   "ImageNet cannot be downloaded automatically: get ILSVRC2012_img_train.tar, "
                   "ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from image-net.org "
                   "into ROOT (torchvision.datasets.ImageNet unpacks them), or use "
                   "data.name=imagefolder with ROOT/train/<class> and ROOT/val/<class>",
                   downloadable=False),
]

_LAYOUTS = {
    "food101": "ROOT/food-101/{images/<class>/*.jpg, meta/train.json, meta/test.json}",
    "flowers102": "ROOT/flowers-102/{jpg/, imagelabels.mat, setid.mat}",
    "pets": "ROOT/oxford-iiit-pet/{images/, annotations/trainval.txt, annotations/test.txt}",
    "aircraft": "ROOT/fgvc-aircraft-2013b/data/{images/, variants.txt, images_variant_*.txt}",
    "cars196": "ROOT/stanford_cars/{cars_train/, cars_test/, devkit/, "
               "cars_test_annos_withlabels.mat}",
    "imagenet": "ROOT/{meta.bin or ILSVRC2012_devkit_t12.tar.gz, train/<wnid>/, val/<wnid>/}",
}

for _set in SETS:
    register_source(DatasetSource(name=_set.name, load=_set.load, summary=_set.summary,
                                  layout=_LAYOUTS[_set.name], folder=_set.folder))
