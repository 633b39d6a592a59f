"""Datasets with transforms, and DataLoaders whose randomness is a function of (seed, epoch).

The training sampler hands each sample index together with its own seed; the dataset seeds
the augmentation with it. A sample's crop and flip in a given epoch therefore depend on
neither the number of workers nor on what ran before, which makes a resumed run repeat the
interrupted one exactly.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ftlab.data.unreadable import collate_present, read_sample


class TransformedSubset(Dataset):
    """`base[indices[i]]` with `transform` applied to the image.

    Indexing with `(i, seed)` runs the transform under that seed without disturbing the
    caller's random state. A damaged image gives None (dropped by `collate_present`) or an
    error, as `bad_images` says.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Callable[[Any], Any],
                 targets: Sequence[int], bad_images: str = "skip") -> None:
        self.base = base
        self.indices = list(indices)
        self.transform = transform
        self.targets = list(targets)
        self.bad_images = bad_images

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = read_sample(self.base, self.indices[index], self.bad_images)
        if sample is None:
            return None
        image, label = sample
        if seed is None:
            return self.transform(image), label
        with seeded_cpu_rng(seed):
            return self.transform(image), label


@contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Run under `seed` on the CPU generator, then restore it.

    Only the CPU default generator, which is what torchvision's transforms draw from:
    `torch.manual_seed` and `fork_rng` also visit every accelerator backend and cost ~50x
    more, which per image made the input pipeline twice as slow.
    """
    generator = torch.random.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


class SeededShuffleSampler(Sampler[tuple[int, int]]):
    """A shuffle per epoch from (seed, epoch), yielding `(index, per-sample seed)`.

    Call `set_epoch` before each epoch, as with `DistributedSampler`. With `world_size` > 1
    every process draws the same shuffle and takes its share of each global batch of
    `global_batch` samples (rank r the r-th slice), so together the processes see exactly
    the batches one process would; incomplete last batches are dropped.
    """

    def __init__(self, size: int, seed: int, global_batch: int = 1, rank: int = 0,
                 world_size: int = 1) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.global_batch, self.rank, self.world_size = global_batch, rank, world_size
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Draw epoch `epoch`'s order; `start` skips that many of this process's samples
        (whole batches already trained before a run was stopped mid-epoch)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.size - self.start
        return (self.size // self.global_batch) * (self.global_batch // self.world_size) \
            - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, stream=1))
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        pairs = list(zip(order, seeds))
        if self.world_size == 1:
            return iter(pairs[self.start:])
        local = self.global_batch // self.world_size
        share = []
        for start in range(0, self.size - self.global_batch + 1, self.global_batch):
            first = start + self.rank * local
            share.extend(pairs[first:first + local])
        return iter(share[self.start:])


class ShardSampler(Sampler[int]):
    """Every `world_size`-th index from `rank`: evaluation split without duplicates."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, size, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for one (seed, epoch, stream); streams keep uses apart."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def default_workers() -> int:
    """One less than the CPUs this process may use, at most 8: the main process trains."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus - 1))


def train_loader(dataset: Dataset, batch_size: int, seed: int, workers: int,
                 pin_memory: bool, rank: int = 0, world_size: int = 1) -> DataLoader:
    """Shuffled training batches; `batch_size` is the global batch (split over processes)."""
    size = len(dataset)  # type: ignore[arg-type]
    sampler = SeededShuffleSampler(size, seed, batch_size, rank, world_size)
    return DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler,
                      drop_last=world_size == 1 and size > batch_size,
                      num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, collate_fn=collate_present,
                      generator=_own_generator())


def eval_loader(dataset: Dataset, batch_size: int, workers: int, pin_memory: bool,
                rank: int = 0, world_size: int = 1) -> DataLoader:
    sampler = ShardSampler(len(dataset), rank, world_size)  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0,
                      collate_fn=collate_present, generator=_own_generator())


def _own_generator() -> torch.Generator:
    """A DataLoader draws its workers' base seed when an epoch starts; from its own generator
    it leaves the global RNG (dropout) alone, so a run resumed mid-epoch continues the same
    random stream. Augmentation is seeded per sample by the sampler, not by this seed."""
    return torch.Generator().manual_seed(0)
