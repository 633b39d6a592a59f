"""Which output of a network means which class of the data it is evaluated on.

A fine-tuned network is evaluated on data with its own classes, in any order, or on a
subset of them (each class matched by name). A pretrained network with its own ImageNet
head is evaluated on ImageNet (torchvision's layout, whose 1000 classes are in the head's
order) or on any image folder whose class folders are ImageNet's WordNet ids (n01440764, ...)
— so a few ImageNet classes copied into a folder evaluate the pretrained head correctly.
"""

from __future__ import annotations

from ftlab.errors import DataError
from ftlab.inference.target import Target


def label_map(target: Target, data_name: str, names: list[str], ids: list[str] | None = None
              ) -> list[int]:
    """For each class of the data, the index of the network output that means it: by name
    for a fine-tuned network, by identifier (`ids`: ImageNet's WordNet ids, or the names)
    for a kept ImageNet head.

    Raises:
        DataError: some class of the data is not one the network knows, naming them.
    """
    data_classes = (ids or names) if target.imagenet_head else names
    if target.kind == "pretrained" and not target.imagenet_head:
        if len(data_classes) != len(target.classes):
            raise DataError(f"model.head=keep: the head of {target.source} has "
                            f"{len(target.classes)} outputs but {data_name} has "
                            f"{len(data_classes)} classes; keep a head only on data it was "
                            "trained for, or fine-tune one with ftlab train")
        return list(range(len(data_classes)))
    if data_classes == target.classes:
        return list(range(len(data_classes)))
    index = {name: i for i, name in enumerate(target.classes)}
    unknown = [name for name in data_classes if name not in index]
    if unknown:
        raise DataError(_mismatch(target, data_name, data_classes, unknown))
    return [index[name] for name in data_classes]


def _mismatch(target: Target, data_name: str, data_classes: list[str],
              unknown: list[str]) -> str:
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    if target.imagenet_head:
        return (f"model.head=keep: the pretrained head's classes are ImageNet-1k's WordNet ids, "
                f"and {len(unknown)} of the {len(data_classes)} classes of {data_name} are "
                f"not ({shown}); evaluate on data.name=imagenet, or on an image folder whose "
                "class folders are WordNet ids such as n01440764")
    known = ", ".join(target.classes[:5]) + (", ..." if len(target.classes) > 5 else "")
    missing = [name for name in target.classes if name not in data_classes]
    also = f"; it lacks {len(missing)} of the network's classes" if missing else ""
    return (f"the classes of {data_name} do not match those {target.label} was trained on: "
            f"{len(unknown)} are unknown to it ({shown}){also}; its classes are {known} — "
            "evaluate on data with those classes (data.name, data.root)")
