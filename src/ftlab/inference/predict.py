"""`ftlab predict`: class names and probabilities for image files, batched.

Images are decoded as ImageFolder decodes them (PIL, RGB) and prepared with the run's
evaluation preprocessing, in DataLoader workers while the network runs; the network is the
one `ftlab eval` runs, so both predict the same class for the same file. A file that cannot
be read is reported on its own and the others go on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from PIL import UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from ftlab.data import DAMAGE, NotRegularFile, default_workers, eval_transform, load_rgb
from ftlab.errors import ConfigError, DataError
from ftlab.inference.evaluate import run_settings
from ftlab.inference.target import Target, build_network, load_target
from ftlab.runtime import resolve_device


@dataclass(frozen=True)
class Prediction:
    """One image: its `top_k` (class name, probability) pairs, most probable first, or why
    it could not be read."""

    path: str
    top: list[tuple[str, float]]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path,
                "predictions": [{"class": name, "probability": p} for name, p in self.top]}


def image_files(inputs: Sequence[str | Path]) -> list[tuple[str, str | None]]:
    """Each input file as it is, each folder's image files (recursively, sorted), in the
    order given; an input that does not exist comes back with its error."""
    files: list[tuple[str, str | None]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
            if not found:
                files.append((str(path), "folder holds no image files (" +
                              ", ".join(IMG_EXTENSIONS[:4]) + ", ...)"))
            files.extend((str(p), None) for p in found)
        elif path.exists():
            files.append((str(path), None))
        else:
            files.append((str(path), "no such file or folder"))
    return files


class ImageFiles(Dataset):
    """Files decoded and prepared; a file that cannot be read gives its error instead."""

    def __init__(self, files: list[tuple[str, str | None]], transform) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        path, error = self.files[index]
        if error is not None:
            return index, None, error
        try:
            return index, self.transform(load_rgb(path)), None
        except NotRegularFile as err:
            return index, None, str(err)
        except UnidentifiedImageError:
            return index, None, "not an image (no format PIL can decode)"
        except (*DAMAGE, IsADirectoryError) as err:
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else \
                type(err).__name__
            return index, None, f"not a readable image ({reason})"


def _collate(samples: list[tuple[int, torch.Tensor | None, str | None]]) -> Any:
    good = [(i, image) for i, image, _ in samples if image is not None]
    images = torch.stack([image for _, image in good]) if good else None
    return [i for i, _ in good], images, [(i, err) for i, image, err in samples if image is None]


def predict(target: str | Target, inputs: Sequence[str | Path], *,
            overrides: Sequence[str] = (), top_k: int = 5, batch_size: int | None = None,
            workers: int | None = None) -> Iterator[Prediction]:
    """Predictions for the image files and folders in `inputs`, in that order.

    Args:
        target: A run folder, an ftlab checkpoint or `pretrained:<weights>` (with
            `model.head=keep` among the overrides).
        overrides: `data.resolution`, `train.device`, ... (`ftlab eval`'s).
        top_k: Classes per image, most probable first (at most the number of classes).
        batch_size: Images per forward pass (default: the run's evaluation batch size).
        workers: Decoding processes (default: one less than the CPUs, at most 8).
    """
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k} is not allowed: a positive integer")
    target = target if isinstance(target, Target) else load_target(target, overrides)
    files = image_files(inputs)
    if not files:
        raise DataError("no images given; pass image files or folders of images")
    config = target.config
    device = resolve_device(config.train.device, config.train.amp)
    settings = run_settings(target, device)
    model = build_network(target, as_trained=True).to(device)
    batch = batch_size or config.train.eval_batch_size or 2 * config.train.batch_size
    workers = default_workers() if workers is None else workers
    loader = DataLoader(ImageFiles(files, eval_transform(target.input_spec())), batch_size=batch,
                        num_workers=min(workers, (len(files) - 1) // batch + 1),
                        collate_fn=_collate, pin_memory=device.type == "cuda")
    k = min(top_k, len(target.names))
    with torch.no_grad():
        for positions, images, errors in loader:
            done: dict[int, Prediction] = {i: Prediction(files[i][0], [], err)
                                           for i, err in errors}
            if images is not None:
                with settings.autocast():
                    logits = model(settings.to_device(images, torch.zeros(0))[0]).float()
                indices = logits.topk(k, dim=1).indices  # as eval ranks: same top-1
                values = logits.softmax(dim=1).gather(1, indices)
                for i, row_p, row_i in zip(positions, values.tolist(), indices.tolist()):
                    done[i] = Prediction(files[i][0], [(target.names[c], p)
                                                       for c, p in zip(row_i, row_p)])
            yield from (done[i] for i in sorted(done))


FORMATS = ("table", "jsonl", "csv")


def prediction_writer(fmt: str, stream: TextIO) -> Callable[[Prediction], None]:
    """Writes each prediction as it comes: an aligned table line, a JSON line, or CSV rows
    (path, rank, class, probability, error); flushed, so a long listing streams."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not allowed: one of {', '.join(FORMATS)}")
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["path", "rank", "class", "probability", "error"])

    def write(prediction: Prediction) -> None:
        if fmt == "jsonl":
            stream.write(json.dumps(prediction.to_dict()) + "\n")
        elif fmt == "csv":
            if prediction.error is not None:
                writer.writerow([prediction.path, "", "", "", prediction.error])
            for rank, (name, p) in enumerate(prediction.top, start=1):
                writer.writerow([prediction.path, rank, name, f"{p:.6f}", ""])
        else:
            cells = [f"{name} {100 * p:.1f}%" for name, p in prediction.top] or \
                [f"error: {prediction.error}"]
            stream.write(f"{prediction.path}  " + "  ".join(cells) + "\n")
        stream.flush()

    return write
