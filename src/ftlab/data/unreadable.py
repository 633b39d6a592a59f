"""What happens when an image file cannot be decoded: skip it (counted) or stop.

Real datasets hold the odd truncated JPEG or zero-byte file; one should not end a day-long
run. With `data.bad_images=skip` the sample is dropped from its batch with a warning naming
the file, and the run summary counts how many were dropped; with `error` the run stops with
the file's name. A file that is missing altogether is always an error: that is a moved or
half-copied dataset, not a damaged image.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, Subset, default_collate

from ftlab.errors import DataError

log = logging.getLogger("ftlab")

# PIL reports damage as OSError ("image file is truncated", "cannot identify image file"),
# SyntaxError (broken headers), ValueError, or DecompressionBombError (absurd dimensions).
# Its DecompressionBombWarning (more than Image.MAX_IMAGE_PIXELS, 89 M pixels by default)
# is raised as an error here: one such image would decode into gigabytes in every worker.
DAMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
          Image.DecompressionBombWarning)
_reported: set[str] = set()


class NotRegularFile(OSError):
    """An image path that names a FIFO, socket or device: opening one may block forever."""


def load_rgb(path: str | Path) -> Image.Image:
    """The image at `path` as RGB, decoded as torchvision's `pil_loader` decodes it; but only
    from a regular file (`NotRegularFile` otherwise, before it is opened), and with PIL's
    decompression-bomb limit (Image.MAX_IMAGE_PIXELS) as an error, not a printed warning.
    Every image ftlab decodes from a file comes through here."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
            "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise NotRegularFile(f"not a regular file but {kind}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")


def read_sample(base: Dataset, index: int, policy: str) -> tuple[Any, int] | None:
    """`base[index]`, or None when its image is damaged and `policy` is skip."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return base[index]
    except (FileNotFoundError, PermissionError) as err:
        raise DataError(f"image {sample_path(base, index)} cannot be opened "
                        f"({err.strerror or err}); the dataset folder is incomplete") from None
    except DAMAGE as err:
        path = sample_path(base, index)
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        if policy == "error":
            raise DataError(f"image {path} cannot be decoded ({reason}); remove or replace it, or "
                            "set data.bad_images=skip to train without it") from None
        if path not in _reported:
            _reported.add(path)
            log.warning("skipping unreadable image %s (%s)", path, reason)
        return None


def sample_path(dataset: Dataset, index: int) -> str:
    """The file behind a sample of a torchvision-style dataset, for messages."""
    if isinstance(dataset, Subset):
        return sample_path(dataset.dataset, dataset.indices[index])
    if isinstance(dataset, ConcatDataset):
        for part, end in zip(dataset.datasets, dataset.cumulative_sizes):
            if index < end:
                return sample_path(part, index - (end - len(part)))  # type: ignore[arg-type]
    for attribute in ("samples", "_samples", "_image_files", "imgs"):
        files = getattr(dataset, attribute, None)
        if files is not None:
            item = files[index]
            return str(item[0] if isinstance(item, tuple) else item)
    return f"#{index} of {type(dataset).__name__}"


def collate_present(batch: list[Any]) -> Any:
    """Default collation of the samples that could be read; None if none could."""
    present = [sample for sample in batch if sample is not None]
    return default_collate(present) if present else None
