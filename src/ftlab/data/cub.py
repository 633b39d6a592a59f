"""CUB-200-2011 in its official archive layout, with the official train/test split.

torchvision has no CUB class, so ftlab reads the archive's own index files:
`images.txt` (id, path), `image_class_labels.txt` (id, 1-based label), `train_test_split.txt`
(id, 1 = train) and `classes.txt` (label, "NNN.Class_name").
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.utils import download_and_extract_archive

from ftlab.config.schema import DataConfig
from ftlab.data.sources import DatasetSource, SourceSplits, data_root, register_source
from ftlab.data.unreadable import load_rgb
from ftlab.errors import DataError

FOLDER = "CUB_200_2011"
URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
MD5 = "97eceeb196236b17998738112f37df78"
INDEX_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


class ImageList(Dataset):
    """Images from a list of paths with their labels; `samples` as in ImageFolder."""

    def __init__(self, samples: list[tuple[Path, int]]) -> None:
        self.samples = samples
        self.targets = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return load_rgb(path), label


def load_cub(config: DataConfig) -> SourceSplits:
    base = data_root(config) / FOLDER
    if config.download and not (base / "images.txt").is_file():
        _download(data_root(config))
    missing = [name for name in INDEX_FILES if not (base / name).is_file()]
    if missing:
        raise DataError(f"cub200 not found under {data_root(config)} (missing {base / missing[0]});"
                        " set data.download=true to fetch the official CUB_200_2011.tgz, or "
                        "data.root=PATH to the folder that holds CUB_200_2011/")
    paths = _pairs(base / "images.txt")
    labels = {k: int(v) - 1 for k, v in _pairs(base / "image_class_labels.txt").items()}
    is_train = {k: v == "1" for k, v in _pairs(base / "train_test_split.txt").items()}
    classes = [name.split(".", 1)[-1].replace("_", " ")
               for _, name in sorted(_pairs(base / "classes.txt").items(), key=lambda kv:
                                     int(kv[0]))]
    if not paths.keys() == labels.keys() == is_train.keys():
        raise DataError(f"CUB index files under {base} list different image ids; re-extract "
                        "CUB_200_2011.tgz")
    train = [(base / "images" / paths[i], labels[i]) for i in paths if is_train[i]]
    test = [(base / "images" / paths[i], labels[i]) for i in paths if not is_train[i]]
    train_set, test_set = ImageList(train), ImageList(test)
    return SourceSplits(train=train_set, train_targets=train_set.targets, test=test_set,
                        test_targets=test_set.targets, classes=classes)


def _pairs(path: Path) -> dict[str, str]:
    """`<id> <value>` lines as a dict, in file order."""
    pairs = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            key, sep, value = line.strip().partition(" ")
            if not sep:
                raise DataError(f"{path} line {number} is not '<id> <value>': {line[:60]!r}")
            pairs[key] = value.strip()
    return pairs


def _download(root: Path) -> None:
    try:
        download_and_extract_archive(URL, str(root), md5=MD5)
    except (OSError, RuntimeError) as err:
        raise DataError(f"could not download CUB-200-2011 from {URL} ({err}); download it "
                        f"elsewhere and extract it into {root}") from None


register_source(DatasetSource(
    name="cub200",
    load=load_cub,
    summary="CUB-200-2011 birds (official archive), 5,994 train / 5,794 test, 200 classes",
    layout="ROOT/CUB_200_2011/{images/<NNN.Class>/*.jpg, images.txt, image_class_labels.txt, "
           "train_test_split.txt, classes.txt}",
    folder=FOLDER,
))
