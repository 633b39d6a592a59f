"""Tiny fake copies of the on-disk layouts of real image-classification datasets.

Each ``make_*`` function writes a few 12x12 RGB JPEGs plus the metadata files that
torchvision 0.29's dataset class (or, for CUB-200-2011, the official archive) expects,
so that real loading code can be tested offline. Colours depend on class and index, so
images differ. Nothing is downloaded. The ``.mat`` files (Flowers102, StanfordCars) need scipy.

One loader cannot open a fake copy as it is: Flowers102 md5-checks its .mat files, so
``torchvision.datasets.flowers102.Flowers102._check_integrity`` must be monkeypatched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = 12

StrPath = str | os.PathLike[str]

# A few real ImageNet synsets, so that these wnids get their real class-name tuples.
_IMAGENET_NAMES: dict[str, tuple[str, ...]] = {
    "n01440764": ("tench", "Tinca tinca"),
    "n01443537": ("goldfish", "Carassius auratus"),
    "n01484850": ("great white shark", "white shark", "man-eater", "man-eating shark",
                  "Carcharodon carcharias"),
    "n01491361": ("tiger shark", "Galeocerdo cuvieri"),
}

# A trimap as the pets annotations hold them: 1 foreground, 2 background, 3 border.
_TRIMAP = np.arange(IMAGE_SIZE * IMAGE_SIZE, dtype=np.uint8).reshape(IMAGE_SIZE, -1) % 3 + 1


def _write_image(path: Path, label: int, index: int) -> None:
    """Write a small flat-colour RGB JPEG whose colour depends on ``label`` and ``index``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (
        (40 * label + 7 * index) % 256,
        (90 * label + 31 * index + 60) % 256,
        (150 * label + 53 * index + 120) % 256,
    )
    Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), colour).save(path, format="JPEG", quality=95)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write ``lines`` as a text file, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _check_names(names: Sequence[str], *, spaces: bool = False) -> None:
    """Reject duplicates and names that cannot round-trip through the text or folder formats."""
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names: {list(names)}")
    for name in names:
        bad = not name or name != name.strip() or "/" in name or "\n" in name
        if bad or (not spaces and " " in name):
            raise ValueError(f"unusable class name: {name!r}")


def _check_mat_count(what: str, count: int) -> None:
    """Reject a 1-element .mat array: ``loadmat(squeeze_me=True)`` makes it a scalar."""
    if count == 1:
        raise ValueError(f"{what} would hold 1 entry; torchvision cannot load that (use 0 or >= 2)")


def make_food101(
    root: StrPath, classes: Sequence[str], train_per_class: int, test_per_class: int
) -> None:
    """Write ``root/food-101`` as ``torchvision.datasets.Food101`` reads it.

    ``meta/{train,test}.json`` map each class to ``"<class>/<id>"`` paths (every class is a
    key, even with 0 images); images are ``images/<class>/<id>.jpg``; ``meta/classes.txt``,
    ``labels.txt`` and ``{train,test}.txt`` are written too. Food101 labels by position in
    ``sorted(classes)``, not in the given order. No integrity check runs; nothing to patch.
    """
    _check_names(classes)
    base = Path(root) / "food-101"
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    image_id = 100000
    for label, name in enumerate(classes):
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            splits[split][name] = []
            for _ in range(count):
                image_id += 1
                splits[split][name].append(f"{name}/{image_id}")
                _write_image(base / "images" / name / f"{image_id}.jpg", label, image_id)
    meta = base / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    for split, paths in splits.items():
        (meta / f"{split}.json").write_text(json.dumps(paths))
        _write_lines(meta / f"{split}.txt", [p for ps in paths.values() for p in ps])
    _write_lines(meta / "classes.txt", list(classes))
    _write_lines(meta / "labels.txt", [name.replace("_", " ").capitalize() for name in classes])


def make_flowers102(
    root: StrPath, n_classes: int, train_per_class: int, val_per_class: int, test_per_class: int
) -> None:
    """Write ``root/flowers-102`` as ``torchvision.datasets.Flowers102`` reads it.

    Images are ``jpg/image_00001.jpg``...; ``imagelabels.mat`` holds ``labels`` (1-based) and
    ``setid.mat`` holds ``trnid``/``valid``/``tstid`` (1-based image ids). Labels are
    0..n_classes-1, named by the fixed ``Flowers102.classes`` list (always 102 names).
    Each split needs 0 or >= 2 images (scipy squeezes a 1-element array to a scalar).

    Monkeypatch required: the constructor md5-checks both .mat files against the real ones, so
    patch ``torchvision.datasets.flowers102.Flowers102._check_integrity`` to return True.
    """
    if not 1 <= n_classes <= 102:
        raise ValueError("Flowers102 names 102 classes; n_classes must be in 1..102")
    counts = {"trnid": train_per_class, "valid": val_per_class, "tstid": test_per_class}
    for key, count in counts.items():
        _check_mat_count(f"Flowers102 split {key}", n_classes * count)
    _check_mat_count("Flowers102 imagelabels", n_classes * sum(counts.values()))
    base = Path(root) / "flowers-102"
    labels: list[int] = []
    ids: dict[str, list[int]] = {key: [] for key in counts}
    for label in range(n_classes):
        for key, count in counts.items():
            for _ in range(count):
                labels.append(label + 1)
                ids[key].append(len(labels))
                _write_image(base / "jpg" / f"image_{len(labels):05d}.jpg", label, len(labels))
    base.mkdir(parents=True, exist_ok=True)
    from scipy.io import savemat

    savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {key: np.array([v], dtype=np.uint16) for key, v in ids.items()})


def pet_display_name(stem: str) -> str:
    """The class name ``OxfordIIITPet`` derives from a breed file-name stem.

    For example "american_bulldog" -> "American Bulldog", "Abyssinian" -> "Abyssinian".
    """
    return " ".join(part.title() for part in stem.replace(" ", "_").split("_"))


def make_pets(
    root: StrPath, classes: Sequence[str], trainval_per_class: int, test_per_class: int
) -> None:
    """Write ``root/oxford-iiit-pet`` as ``torchvision.datasets.OxfordIIITPet`` reads it.

    ``classes`` are breed file-name stems as in the real data ("Abyssinian", "american_bulldog";
    spaces become underscores); images are ``images/<stem>_<n>.jpg``; label = position in
    ``classes``. As in the real data a capitalised stem is a cat (species 1), else a dog (2).
    torchvision names the classes ``pet_display_name(stem)``, but derives them from the split's
    own file names: a class with 0 images in a split is missing from that split's ``classes``.
    Also writes ``annotations/trimaps/*.png`` and ``annotations/list.txt``. Nothing to patch.
    """
    stems = [name.replace(" ", "_") for name in classes]
    _check_names(stems)
    base = Path(root) / "oxford-iiit-pet"
    species = [1 if stem[0].isupper() else 2 for stem in stems]
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for label, stem in enumerate(stems):
        breed_id = species[: label + 1].count(species[label])
        n = 0
        for split, count in (("trainval", trainval_per_class), ("test", test_per_class)):
            for _ in range(count):
                n += 1
                lines[split].append(f"{stem}_{n} {label + 1} {species[label]} {breed_id}")
                _write_image(base / "images" / f"{stem}_{n}.jpg", label, n)
                trimap = base / "annotations" / "trimaps" / f"{stem}_{n}.png"
                trimap.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_TRIMAP).save(trimap)
    for split, split_lines in lines.items():
        _write_lines(base / "annotations" / f"{split}.txt", split_lines)
    header = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids", "#SPECIES: 1:Cat 2:Dog",
              "#BREED ID: 1-25:Cat 1:12:Dog"]
    all_lines = sorted(lines["trainval"] + lines["test"], key=str.lower)
    _write_lines(base / "annotations" / "list.txt", header + all_lines)


def make_aircraft(
    root: StrPath, classes: Sequence[str], trainval_per_class: int, test_per_class: int
) -> None:
    """Write ``root/fgvc-aircraft-2013b`` as ``torchvision.datasets.FGVCAircraft`` reads it.

    Variant level only: ``data/variants.txt`` (label = 0-based line number),
    ``data/images/<7 digits>.jpg``, ``data/images_variant_{trainval,train,val,test}.txt``
    ("<image> <variant>"; train and val alternate within trainval) and ``images_{split}.txt``.
    Names may hold spaces ("Cessna 172"). No family/manufacturer files, so
    ``annotation_level="family"``/``"manufacturer"`` fail. No integrity check; nothing to patch.
    """
    _check_names(classes, spaces=True)
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    rows: dict[str, list[tuple[str, str]]] = {"trainval": [], "train": [], "val": [], "test": []}
    image_id = 1000000
    for label, name in enumerate(classes):
        for split, count in (("trainval", trainval_per_class), ("test", test_per_class)):
            for index in range(count):
                image_id += 1
                rows[split].append((f"{image_id:07d}", name))
                if split == "trainval":
                    rows["train" if index % 2 == 0 else "val"].append((f"{image_id:07d}", name))
                _write_image(data / "images" / f"{image_id:07d}.jpg", label, image_id)
    _write_lines(data / "variants.txt", list(classes))
    for split, split_rows in rows.items():
        _write_lines(data / f"images_variant_{split}.txt", [f"{i} {n}" for i, n in split_rows])
        _write_lines(data / f"images_{split}.txt", [image for image, _ in split_rows])


def make_stanford_cars(
    root: StrPath, classes: Sequence[str], train_per_class: int, test_per_class: int
) -> None:
    """Write ``root/stanford_cars`` as ``torchvision.datasets.StanfordCars`` reads it.

    ``devkit/cars_meta.mat`` holds the ``class_names`` cell array (label = 0-based position);
    ``devkit/cars_train_annos.mat`` and ``cars_test_annos_withlabels.mat`` hold the
    ``annotations`` struct array (bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-based), fname)
    for ``cars_train/00001.jpg``... and ``cars_test/00001.jpg``.... Needs >= 2 classes and
    0 or >= 2 images per split (scipy squeezes 1-element arrays). Nothing to patch.
    """
    from scipy.io import savemat

    _check_names(classes, spaces=True)
    _check_mat_count("StanfordCars class_names", len(classes))
    base = Path(root) / "stanford_cars"
    fields = [(f, object) for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    for split, count, mat in (
        ("train", train_per_class, base / "devkit" / "cars_train_annos.mat"),
        ("test", test_per_class, base / "cars_test_annos_withlabels.mat"),
    ):
        _check_mat_count(f"StanfordCars {split} annotations", len(classes) * count)
        annotations = np.zeros((1, len(classes) * count), dtype=fields)
        (base / f"cars_{split}").mkdir(parents=True, exist_ok=True)
        for i in range(annotations.shape[1]):
            label, fname = i // count, f"{i + 1:05d}.jpg"
            box = [np.uint16(v) for v in (1, 1, IMAGE_SIZE, IMAGE_SIZE)]
            annotations[0, i] = (*box, np.uint16(label + 1), fname)
            _write_image(base / f"cars_{split}" / fname, label, i)
        mat.parent.mkdir(parents=True, exist_ok=True)
        savemat(mat, {"annotations": annotations})
    class_names = np.array([list(classes)], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": class_names})


def make_imagenet(
    root: StrPath,
    wnids: Sequence[str] | Mapping[str, Sequence[str]],
    train_per_class: int,
    val_per_class: int,
) -> None:
    """Write ``root`` as ``torchvision.datasets.ImageNet`` reads it once its archives are parsed.

    ``meta.bin`` is ``torch.save((wnid_to_classes, val_wnids))`` as ``parse_devkit_archive``
    writes it; images are ``train/<wnid>/<wnid>_<n>.JPEG`` and
    ``val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG``. ``wnids`` may map each wnid to its names;
    otherwise a few real wnids get real names, the rest ("<wnid> name", "<wnid> synonym").
    Labels follow ``sorted(wnids)`` (ImageFolder); give every class >= 1 image per split.
    No md5 check runs once ``meta.bin`` and the split folder exist; nothing to patch.
    """
    import torch

    if isinstance(wnids, Mapping):
        names = {wnid: tuple(clss) for wnid, clss in wnids.items()}
    else:
        default = {w: (f"{w} name", f"{w} synonym") for w in wnids}
        names = {w: _IMAGENET_NAMES.get(w, default[w]) for w in wnids}
    _check_names(list(names))
    base = Path(root)
    val_wnids: list[str] = []
    for label, wnid in enumerate(sorted(names)):
        for n in range(train_per_class):
            _write_image(base / "train" / wnid / f"{wnid}_{n + 1}.JPEG", label, n)
        for n in range(val_per_class):
            val_wnids.append(wnid)
            val_file = f"ILSVRC2012_val_{len(val_wnids):08d}.JPEG"
            _write_image(base / "val" / wnid / val_file, label, 100 + n)
    torch.save((names, val_wnids), base / "meta.bin")


def make_cub200(
    root: StrPath, classes: Sequence[str], train_per_class: int, test_per_class: int
) -> None:
    """Write ``root/CUB_200_2011`` in the official CUB-200-2011 archive layout.

    ``classes`` are bare names ("Black_footed_Albatross"); class folders are ``NNN.<name>``
    with NNN the 1-based position. Writes ``images/<folder>/<name>_<NNNN>.jpg``,
    ``images.txt`` ("<id> <folder>/<file>"), ``image_class_labels.txt`` ("<id> <label>",
    1-based), ``train_test_split.txt`` ("<id> <1 train, 0 test>") and ``classes.txt``
    ("<label> <folder>"). torchvision has no CUB class, so nothing to patch.
    """
    _check_names(classes)
    base = Path(root) / "CUB_200_2011"
    folders = [f"{label:03d}.{name}" for label, name in enumerate(classes, 1)]
    images: list[str] = []
    labels: list[str] = []
    split: list[str] = []
    for label, (name, folder) in enumerate(zip(classes, folders), 1):
        for n in range(train_per_class + test_per_class):
            image_id = len(images) + 1
            rel = f"{folder}/{name}_{n + 1:04d}.jpg"
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {label}")
            split.append(f"{image_id} {1 if n < train_per_class else 0}")
            _write_image(base / "images" / rel, label, n)
    _write_lines(base / "images.txt", images)
    _write_lines(base / "image_class_labels.txt", labels)
    _write_lines(base / "train_test_split.txt", split)
    _write_lines(base / "classes.txt", [f"{n} {folder}" for n, folder in enumerate(folders, 1)])
