"""Every named dataset, from a tiny fake copy of its real on-disk format, through ftlab's loader.

The fakes (tests/fake_datasets.py) write the files each dataset's own loader reads; nothing
is mocked except Flowers-102's md5 check of its two .mat files, which no fake can pass.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import fake_datasets as fake
import pytest
import torch

from ftlab.cli import main
from ftlab.config import load_config
from ftlab.data import build_data
from ftlab.errors import DataError
from ftlab.preprocessing import Preprocessing

PETS = ["Abyssinian", "american_bulldog", "Bengal"]
AIRCRAFT = ["707-320", "A300B4", "Cessna 172"]
FOODS = ["tacos", "apple_pie", "ramen"]

# name -> (writer, official train images per class, test per class, class names as ftlab
# reports them, in label order)
DATASETS = {
    "food101": (lambda r: fake.make_food101(r, FOODS, 8, 2), 8, 2, sorted(FOODS)),
    "flowers102": (lambda r: fake.make_flowers102(r, 3, 4, 4, 2), 8, 2,
                   ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]),
    "pets": (lambda r: fake.make_pets(r, PETS, 8, 2), 8, 2,
             ["Abyssinian", "American Bulldog", "Bengal"]),
    "aircraft": (lambda r: fake.make_aircraft(r, AIRCRAFT, 8, 2), 8, 2, AIRCRAFT),
    "cars196": (lambda r: fake.make_stanford_cars(r, ["Audi A4 2012", "BMW M3 2010",
                                                      "Volvo C30 2012"], 8, 2), 8, 2,
                ["Audi A4 2012", "BMW M3 2010", "Volvo C30 2012"]),
    "imagenet": (lambda r: fake.make_imagenet(r, ["n01440764", "n01443537", "n01491361"], 8, 2),
                 8, 2, ["tench", "goldfish", "tiger shark"]),
    "cub200": (lambda r: fake.make_cub200(r, ["Black_footed_Albatross", "Laysan_Albatross",
                                              "Sooty_Albatross"], 8, 2), 8, 2,
               ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]),
}


@pytest.fixture(autouse=True)
def _flowers_md5(monkeypatch):
    from torchvision.datasets import flowers102

    monkeypatch.setattr(flowers102.Flowers102, "_check_integrity", lambda self: True)


def _data(name: str, root: Path, *extra: str):
    config = load_config(None, [f"data.name={name}", f"data.root={root}", "data.resolution=16",
                                "data.val_fraction=0.25", *extra])
    return build_data(config.data, Preprocessing())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_loads_with_its_official_split(name, tmp_path):
    write, train_per_class, test_per_class, classes = DATASETS[name]
    write(tmp_path)
    data = _data(name, tmp_path)
    assert data.classes[:3] == classes
    # Flowers-102's class names are fixed in torchvision, whatever the files hold.
    assert data.num_classes == (102 if name == "flowers102" else 3)
    val_per_class = round(0.25 * train_per_class)
    assert data.sizes() == {"train": (train_per_class - val_per_class) * 3,
                            "val": val_per_class * 3, "test": test_per_class * 3}
    assert Counter(data.test.targets) == {0: test_per_class, 1: test_per_class,
                                          2: test_per_class}
    assert Counter(data.val.targets) == {0: 2, 1: 2, 2: 2}
    image, label = data.test[0]
    assert image.shape == (3, 16, 16) and label == data.test.targets[0]
    image, label = data.train[(len(data.train) - 1, 7)]
    assert image.shape == (3, 16, 16) and label == data.train.targets[-1]
    half = _data(name, tmp_path, "data.label_fraction=0.5")
    assert Counter(half.train.targets) == {0: 3, 1: 3, 2: 3}
    assert half.val.indices == data.val.indices


@pytest.mark.parametrize("name, hint", [
    ("food101", "set data.download=true"), ("flowers102", "set data.download=true"),
    ("pets", "set data.download=true"), ("aircraft", "set data.download=true"),
    ("cars196", "lay them out as ROOT/stanford_cars/"),
    ("imagenet", "from image-net.org"), ("cub200", "set data.download=true"),
    ("cifar100", "set data.download=true"),
])
def test_missing_dataset_says_where_and_how(name, hint, tmp_path, capsys):
    with pytest.raises(DataError) as info:
        _data(name, tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and hint in message and "\n" not in message
    code = main(["train", f"data.name={name}", f"data.root={tmp_path}",
                 f"train.output_dir={tmp_path / 'runs'}"])
    assert code == 2
    assert capsys.readouterr().err.startswith("ftlab: error: ")
    assert not (tmp_path / "runs").exists()


def test_cub_index_files_must_agree(tmp_path):
    fake.make_cub200(tmp_path, ["A", "B"], 2, 1)
    labels = tmp_path / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="list different image ids"):
        _data("cub200", tmp_path)


def test_datasets_command_shows_layout_and_presence(tmp_path, capsys):
    fake.make_food101(tmp_path, FOODS, 1, 1)
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in DATASETS:
        assert f"| {name} " in out
    assert "| food101     | yes " in out and "| cub200      | no " in out
    assert "ROOT/CUB_200_2011/{images/<NNN.Class>/*.jpg, images.txt" in out


def _damaged_folder(root: Path) -> Path:
    from test_data import make_imagefolder

    make_imagefolder(root / "train", {"a": 12, "b": 12})
    make_imagefolder(root / "test", {"a": 3, "b": 3})
    good = (root / "train" / "a" / "0.png").read_bytes()
    (root / "train" / "a" / "1.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "train" / "b" / "2.png").write_bytes(b"")                      # zero bytes
    (root / "test" / "b" / "0.png").write_text("not an image")
    return root


def test_unreadable_images_are_skipped_and_counted(tmp_path, tiny, caplog):
    import ftlab

    root = _damaged_folder(tmp_path / "damaged")
    summary = ftlab.train(None, overrides=tiny(**{
        "data.name": "imagefolder", "data.root": root, "data.val_fraction": 0.0,
        "train.batch_size": 4, "train.epochs": 1}))
    assert summary["skipped_images"] == {"train": 2, "val": 0, "test": 1}
    assert summary["split_sizes"] == {"train": 24, "val": 0, "test": 6}
    log = (Path(summary["run_dir"]) / "log.txt").read_text()
    assert f"skipping unreadable image {root / 'test' / 'b' / '0.png'}" in log
    assert "unreadable images: 2 train, 0 val, 1 test" in log
    with open(Path(summary["run_dir"]) / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["skipped_images"], row["skipped_steps"]) for row in rows] == [("2", "0")]


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_is_fatal_when_configured(tmp_path, tiny, capsys, workers):
    root = _damaged_folder(tmp_path / "damaged")
    code = main(["train", *tiny(**{"data.name": "imagefolder", "data.root": root,
                                   "data.bad_images": "error", "data.num_workers": workers,
                                   "train.batch_size": 4})])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ftlab: error: image ") and "cannot be decoded" in err
    assert "data.bad_images=skip" in err and err.count("\n") == 1


def test_a_missing_file_is_an_error_even_when_skipping(tmp_path, tiny, capsys):
    root = _damaged_folder(tmp_path / "damaged")
    from ftlab.data.sources import get_source

    config = load_config(None, ["data.name=imagefolder", f"data.root={root}"])
    source = get_source("imagefolder").load(config.data)
    (root / "train" / "a" / "5.png").unlink()
    with pytest.raises(DataError, match="5.png cannot be opened .*dataset folder is incomplete"):
        for i in range(len(source.train)):
            from ftlab.data.unreadable import read_sample

            read_sample(source.train, i, "skip")


@pytest.mark.parametrize("augment", ["rrc", "crop", "flip"])
def test_device_pipeline_matches_the_worker_pipeline(mirror, augment):
    from ftlab.data import train_loader
    from ftlab.data.device_pipeline import DeviceBatches, in_memory

    config = load_config(None, ["data.name=imagefolder", f"data.root={mirror / 'cifar10-mini'}",
                                "data.resolution=48", "data.label_fraction=0.2",
                                f"data.augment={augment}"])
    data = build_data(config.data, Preprocessing())
    device = DeviceBatches(*in_memory(data.train), 64, data.input, train=True, seed=5,
                           augmentation=data.augmentation)
    stock = train_loader(data.train, 64, seed=5, workers=0, pin_memory=False)
    device.set_position(2)
    stock.sampler.set_epoch(2)
    ours = list(device)
    theirs = list(stock)
    assert len(ours) == len(theirs) == len(device)
    assert torch.equal(torch.cat([y for _, y in ours]), torch.cat([y for _, y in theirs]))
    a = torch.cat([x for x, _ in ours])
    b = torch.cat([x for x, _ in theirs])
    assert a.shape == b.shape == (len(a), 3, 48, 48)
    for dims in ((0, 2, 3), (0, 1, 2, 3)):  # per channel and overall
        assert torch.allclose(a.mean(dims), b.mean(dims), atol=0.05)
        assert torch.allclose(a.std(dims), b.std(dims), rtol=0.05)
    evaluated = next(iter(DeviceBatches(*in_memory(data.test), 50, data.input, train=False)))[0]
    reference = torch.stack([data.test[i][0] for i in range(50)])
    assert (evaluated - reference).abs().max() < 0.02  # one uint8 step after normalisation


def test_device_pipeline_trains_and_resumes(tiny, tmp_path):
    import ftlab

    ftlab.train(None, overrides=tiny(**{"data.pipeline": "device", "train.epochs": 1,
                                        "train.run_name": "dev"}))
    resumed = ftlab.train(resume=tmp_path / "runs" / "dev", overrides=["train.epochs=2"])
    straight = ftlab.train(None, overrides=tiny(**{"data.pipeline": "device", "train.epochs": 2,
                                                   "train.run_name": "straight"}))
    a = torch.load(tmp_path / "runs" / "dev" / "last.pt", weights_only=True)["model"]
    b = torch.load(Path(straight["run_dir"]) / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_top1"] == straight["test_top1"]


def test_empty_class_and_mismatched_classes_exit_2(tmp_path, tiny, capsys):
    from test_data import make_imagefolder

    root = tmp_path / "empty_class"
    make_imagefolder(root / "train", {"a": 3})
    (root / "train" / "b").mkdir()
    make_imagefolder(root / "test", {"a": 1, "b": 1})
    assert main(["train", *tiny(**{"data.name": "imagefolder", "data.root": root})]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftlab: error: {root / 'train'} is not a usable image folder (Found "
                          "no valid file for the classes b.")
    assert err.count("\n") == 1
    other = tmp_path / "mismatch"
    make_imagefolder(other / "train", {"a": 3, "b": 3})
    make_imagefolder(other / "test", {"a": 1, "c": 1})
    assert main(["train", *tiny(**{"data.name": "imagefolder", "data.root": other})]) == 2
    assert "class folders differ" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cub_downloads_and_checks_the_official_archive(tmp_path, monkeypatch):
    """The real download path (torchvision's download_and_extract_archive) from a local HTTP
    server standing in for data.caltech.edu: fetched, md5-checked, extracted, loaded."""
    import functools
    import hashlib
    import http.server
    import tarfile
    import threading

    from ftlab.data import cub

    fake.make_cub200(tmp_path / "src", ["A", "B"], 3, 1)
    archive = tmp_path / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "CUB_200_2011", arcname="CUB_200_2011")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(cub, "URL", f"http://127.0.0.1:{server.server_port}/{archive.name}")
        monkeypatch.setattr(cub, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
        data = _data("cub200", tmp_path / "data", "data.download=true", "data.val_fraction=0")
        assert data.sizes() == {"train": 6, "val": 0, "test": 2} and data.classes == ["A", "B"]
        monkeypatch.setattr(cub, "MD5", "0" * 32)
        with pytest.raises(DataError, match="could not download CUB-200-2011 from http://"):
            _data("cub200", tmp_path / "other", "data.download=true")
    finally:
        server.shutdown()
