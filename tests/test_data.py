"""Datasets by name, deterministic splits, transforms and seeded loaders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from ftlab.config import load_config
from ftlab.data import (
    SeededShuffleSampler,
    build_data,
    default_workers,
    stratified_split,
    train_loader,
)
from ftlab.errors import ConfigError, DataError
from ftlab.preprocessing import Preprocessing


def _config(*overrides: str):
    return load_config(None, list(overrides)).data


def make_imagefolder(root: Path, classes: dict[str, int], size: int = 20) -> Path:
    """`root/<class>/<i>.png` images whose colour encodes the class."""
    for c, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size, size + i % 3), (40 * c, 255 - 40 * c, i)).save(
                folder / f"{i}.png")
    return root


def test_stratified_split_is_deterministic_disjoint_and_balanced():
    targets = [i % 5 for i in range(200)] + [5] * 3
    kept, held = stratified_split(targets, 0.2, seed=7)
    assert (kept, held) == stratified_split(targets, 0.2, seed=7)
    assert stratified_split(targets, 0.2, seed=8) != (kept, held)
    assert sorted(kept + held) == list(range(len(targets)))
    counts = Counter(targets[i] for i in held)
    assert all(counts[c] == 8 for c in range(5))
    assert counts[5] == 1  # a 3-image class still gives one and keeps two
    assert stratified_split(targets, 0.0, seed=0) == (list(range(len(targets))), [])


def test_val_split_and_label_fraction_through_build_data():
    data = build_data(_config("data.name=synthetic", "data.synthetic.train_per_class=20",
                              "data.val_fraction=0.25", "data.resolution=32"), Preprocessing())
    assert data.sizes() == {"train": 60, "val": 20, "test": 32}
    assert set(data.train.indices).isdisjoint(data.val.indices)
    assert Counter(data.val.targets) == {0: 5, 1: 5, 2: 5, 3: 5}
    again = build_data(_config("data.name=synthetic", "data.synthetic.train_per_class=20",
                               "data.val_fraction=0.25", "data.resolution=32"), Preprocessing())
    assert again.val.indices == data.val.indices
    other = build_data(_config("data.name=synthetic", "data.synthetic.train_per_class=20",
                               "data.val_fraction=0.25", "data.split_seed=1"), Preprocessing())
    assert other.val.indices != data.val.indices
    half = build_data(_config("data.name=synthetic", "data.synthetic.train_per_class=20",
                              "data.val_fraction=0.25", "data.label_fraction=0.5"),
                      Preprocessing())
    assert half.val.indices == data.val.indices  # the label fraction never touches val
    assert Counter(half.train.targets) == {0: 8, 1: 8, 2: 8, 3: 8}  # round(0.5 * 15)
    assert set(half.train.indices) <= set(data.train.indices)


def test_no_validation_when_fraction_is_zero():
    data = build_data(_config("data.name=synthetic", "data.val_fraction=0"), Preprocessing())
    assert data.val is None and data.sizes()["val"] == 0


def test_transforms_follow_resolution_and_normalisation():
    data = build_data(_config("data.name=synthetic", "data.resolution=48",
                              "data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]"),
                      Preprocessing())
    image, label = data.test[0]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert data.input.eval_resize == round(48 / 0.875)
    assert -2.0 - 1e-6 <= image.min() and image.max() <= 2.0 + 1e-6  # (x - .5) / .25
    default = build_data(_config("data.name=synthetic"), Preprocessing(crop_size=224,
                                                                       resize_size=232))
    assert default.input.resolution == 224 and default.input.eval_resize == 232


def test_imagefolder_with_train_and_test(tmp_path):
    root = tmp_path / "ds"
    make_imagefolder(root / "train", {"cat": 10, "dog": 10, "eel": 10})
    make_imagefolder(root / "test", {"cat": 2, "dog": 3, "eel": 4})
    data = build_data(_config("data.name=imagefolder", f"data.root={root}",
                              "data.val_fraction=0.2", "data.resolution=16"), Preprocessing())
    assert data.classes == ["cat", "dog", "eel"]
    assert data.sizes() == {"train": 24, "val": 6, "test": 9}
    assert Counter(data.test.targets) == {0: 2, 1: 3, 2: 4}
    assert data.train[0][0].shape == (3, 16, 16)


def test_imagefolder_single_folder_is_split_into_train_and_test(tmp_path):
    root = make_imagefolder(tmp_path / "flat", {"a": 10, "b": 10})
    data = build_data(_config("data.name=imagefolder", f"data.root={root}",
                              "data.test_fraction=0.3", "data.val_fraction=0.1"),
                      Preprocessing())
    assert data.sizes()["test"] == 6
    assert Counter(data.test.targets) == {0: 3, 1: 3}
    assert sum(data.sizes().values()) == 20


def test_imagefolder_val_folder_serves_as_test(tmp_path):
    root = tmp_path / "inet"
    make_imagefolder(root / "train", {"a": 4, "b": 4})
    make_imagefolder(root / "val", {"a": 1, "b": 1})
    data = build_data(_config("data.name=imagefolder", f"data.root={root}"), Preprocessing())
    assert data.sizes()["test"] == 2


def test_imagefolder_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.root is required for data.name=imagefolder"):
        build_data(_config("data.name=imagefolder"), Preprocessing())
    with pytest.raises(DataError, match="is not a folder; expected ROOT/train/<class>"):
        build_data(_config("data.name=imagefolder", f"data.root={tmp_path / 'nope'}"),
                   Preprocessing())
    root = tmp_path / "mismatch"
    make_imagefolder(root / "train", {"a": 2, "b": 2})
    make_imagefolder(root / "test", {"a": 1, "c": 1})
    with pytest.raises(DataError, match=r"class folders differ .*only in train \['b'\], only in "
                                        r"test \['c'\]"):
        build_data(_config("data.name=imagefolder", f"data.root={root}"), Preprocessing())
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="is not a usable image folder"):
        build_data(_config("data.name=imagefolder", f"data.root={empty}"), Preprocessing())


def test_cifar_missing_root_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"cifar10 not found or corrupt under .*expected .*"
                                        r"cifar-10-batches-py\); set data.download=true"):
        build_data(_config("data.name=cifar10", f"data.root={tmp_path}"), Preprocessing())


def test_sampler_depends_only_on_seed_and_epoch():
    a, b = SeededShuffleSampler(50, seed=3), SeededShuffleSampler(50, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert [i for i, _ in a] != [i for i, _ in b]
    assert sorted(i for i, _ in a) == list(range(50))


def test_augmentation_is_independent_of_workers_and_global_rng():
    data = build_data(_config("data.name=synthetic", "data.resolution=24"), Preprocessing())

    def first_batches(workers: int) -> list[torch.Tensor]:
        loader = train_loader(data.train, 8, seed=1, workers=workers, pin_memory=False)
        loader.sampler.set_epoch(4)
        torch.manual_seed(workers)  # must not matter
        return [images for images, _ in list(loader)[:3]]

    for x, y in zip(first_batches(0), first_batches(2)):
        assert torch.equal(x, y)


def test_default_workers_leaves_a_core_for_training():
    assert 0 <= default_workers() <= 8


def _fake_cifar(root: Path, name: str, per_batch: int) -> None:
    """torchvision's on-disk CIFAR format with `per_batch` images in every batch file."""
    import pickle

    import numpy as np

    folder, label_key, meta, names_key, classes = {
        "cifar10": ("cifar-10-batches-py", "labels", "batches.meta", "label_names", 10),
        "cifar100": ("cifar-100-python", "fine_labels", "meta", "fine_label_names", 100),
    }[name]
    files = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10"
             else ["train", "test"])
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for file in files:
        labels = [i % classes for i in range(per_batch)]
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 label_key: labels}
        with open(root / folder / file, "wb") as handle:
            pickle.dump(batch, handle)
    with open(root / folder / meta, "wb") as handle:
        pickle.dump({names_key: [f"c{i}" for i in range(classes)]}, handle)


@pytest.mark.parametrize("name, per_batch, sizes", [
    ("cifar10", 20, {"train": 90, "val": 10, "test": 20}),   # 5 train batches
    ("cifar100", 200, {"train": 100, "val": 100, "test": 200}),
])
def test_cifar_loads_through_torchvision(tmp_path, monkeypatch, name, per_batch, sizes):
    from torchvision import datasets

    _fake_cifar(tmp_path, name, per_batch)
    # The fake files cannot match torchvision's MD5 list; everything else is the real code.
    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda path, md5=None: True)
    data = build_data(_config(f"data.name={name}", f"data.root={tmp_path}",
                              "data.resolution=32", "data.val_fraction=0.1"), Preprocessing())
    assert data.sizes() == sizes
    assert data.classes[:2] == ["c0", "c1"] and data.num_classes == (10 if name == "cifar10"
                                                                     else 100)
    image, label = data.test[3]
    assert image.shape == (3, 32, 32) and label == 3
