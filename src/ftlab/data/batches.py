"""What the training loop reads batches from: one interface for the DataLoader path and the
on-device pipeline, positioned by the runner's epoch cursor.

`set_position(epoch, batch)` draws epoch `epoch`'s order and skips its first `batch` batches
(those a stopped run already trained), so a resumed epoch sees exactly the batches, and the
augmentation, that the uninterrupted epoch would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from torch.utils.data import DataLoader


@runtime_checkable
class BatchSource(Protocol):
    """An iterable of `(images, labels)` batches (None for a batch whose every image was
    unreadable) over one pass of a split, from the current position."""

    batch_size: int
    """This process's batch size."""

    def __len__(self) -> int:
        """Batches left in this pass."""

    def __iter__(self) -> Iterator[Any]: ...

    def set_position(self, epoch: int, batch: int = 0) -> None:
        """Draw epoch `epoch`'s order (1-based) and start after its first `batch` batches."""

    def requested_images(self) -> int:
        """Images the batches left in this pass ask for, before unreadable ones are dropped."""


class LoaderBatches:
    """A `DataLoader` as a `BatchSource`. Training loaders shuffle with a sampler that has
    `set_epoch(epoch, start)`; evaluation loaders have one order and start at the top."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.batch_size = loader.batch_size or 1

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)

    def set_position(self, epoch: int, batch: int = 0) -> None:
        sampler = self.loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch, start=batch * self.batch_size)
        elif batch:
            raise ValueError("an evaluation loader always reads its split from the start")

    def requested_images(self) -> int:
        if self.loader.drop_last:
            return len(self.loader) * self.batch_size
        return len(self.loader.sampler)  # type: ignore[arg-type]
