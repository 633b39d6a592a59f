"""`ftlab eval`: a network on one split of a dataset — accuracy, loss, per-class accuracy,
the confusion matrix and calibration — with every image's prediction.

The network runs as its run ran it (best checkpoint, last epoch's state, memory-efficient
execution when the run used it, the same evaluation batch size and preprocessing), so the
test top-1 of a run's summary.json is reproduced exactly; `data.*` overrides evaluate it on
another dataset or split with the same classes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ftlab.assembly import AMP_DTYPES, StepSettings
from ftlab.data import (
    TransformedSubset,
    build_data,
    default_workers,
    eval_loader,
    sample_path,
)
from ftlab.errors import ConfigError, DataError
from ftlab.fileio import check_replaceable
from ftlab.inference.classes import label_map
from ftlab.inference.metrics import Outcomes, eval_record, tally, write_outputs
from ftlab.inference.target import Target, build_network, load_target
from ftlab.runfiles import EVAL_JSON, EvalRecord
from ftlab.runtime import resolve_amp, resolve_device

log = logging.getLogger("ftlab")

SPLITS = ("test", "val", "train")


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` measured and where it wrote it."""

    record: EvalRecord
    folder: Path
    files: list[Path]


def evaluate(target: str | Target, *, overrides: Sequence[str] = (), split: str = "test",
             bins: int = 15, output_dir: str | Path | None = None,
             overwrite: bool = False) -> EvalResult:
    """Evaluate a run folder, checkpoint or `pretrained:<weights>` and write eval.json,
    per_class.csv, confusion.csv, predictions.csv and the confusion and reliability figures
    into `output_dir` (default `eval/<target label>`).

    Args:
        overrides: Dotted settings: `data.*` (another dataset or root with the same classes),
            `train.device`, `train.eval_batch_size`, ...; for pretrained weights also
            `model.arch` and `model.head=keep`.
        split: test, val (the run's validation split) or train (without augmentation).
        bins: Equal-width confidence bins of the calibration error and diagram.
    """
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not allowed: one of {', '.join(SPLITS)}")
    if not 2 <= bins <= 1000:
        raise ConfigError(f"bins={bins} is not allowed: an integer in [2, 1000]")
    target = target if isinstance(target, Target) else load_target(target, overrides)
    folder = check_replaceable(Path("eval") / target.label if output_dir is None else output_dir,
                               EVAL_JSON, "eval",
                               overwrite)
    config = target.config
    device = resolve_device(config.train.device, config.train.amp)
    if config.train.num_threads is not None:
        torch.set_num_threads(config.train.num_threads)
    data = build_data(config.data, target.preprocessing())
    subset = _split(data, split)
    mapping = label_map(target, config.data.name, data.classes, data.ids)
    model = build_network(target, as_trained=True).to(device)
    outcomes = run_split(model, subset, mapping, run_settings(target, device),
                         config.train.eval_batch_size or 2 * config.train.batch_size,
                         config.data.num_workers)
    tallies = tally(outcomes, data.classes, mapping, bins, split)
    record = eval_record(target, data, split, outcomes, tallies, bins)
    files = write_outputs(folder, record, outcomes, target, data.classes, tallies)
    return EvalResult(record, folder, files)


def _split(data, split: str) -> TransformedSubset:
    if split == "test":
        return data.test
    if split == "val":
        if data.val is None:
            raise DataError("split=val: the run has no validation split (data.val_fraction=0); "
                            "evaluate split=test or set data.val_fraction")
        return data.val
    train = data.train
    return TransformedSubset(train.base, train.indices, data.test.transform, train.targets,
                             train.bad_images)


def run_settings(target: Target, device: torch.device) -> StepSettings:
    """Precision and memory format as the run evaluated (autocast where it used it)."""
    train = target.config.train
    channels_last = train.channels_last and device.type == "cuda"
    return StepSettings(device=device, amp_dtype=AMP_DTYPES[resolve_amp(train.amp, device)],
                        channels_last=channels_last, grad_clip_norm=None, log_every=1)


class Indexed(Dataset):
    """A split's samples with their position, so that dropped unreadable images do not
    shift which prediction belongs to which file."""

    def __init__(self, subset: TransformedSubset) -> None:
        self.subset = subset

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int):
        sample = self.subset[index]
        return None if sample is None else (*sample, index)


@torch.no_grad()
def run_split(model: nn.Module, subset: TransformedSubset, mapping: list[int],
              settings: StepSettings, batch_size: int, workers: int | None) -> Outcomes:
    """Every image's logits reduced to what the metrics need, batch by batch (a 50,000 x
    1,000 logit matrix is never held)."""
    if len(subset) == 0:
        raise DataError("the split to evaluate holds no images")
    workers = default_workers() if workers is None else workers
    loader = eval_loader(Indexed(subset), batch_size, min(workers, len(subset) // batch_size + 1),
                         settings.device.type == "cuda")
    to_output = torch.tensor(mapping)
    outcomes = Outcomes.empty()
    for batch in loader:
        if batch is None:
            continue
        images, labels, positions = batch
        images, labels = settings.to_device(images, labels)
        targets = to_output.to(labels.device)[labels]
        with settings.autocast():
            logits = model(images)
        outcomes.add(logits.float(), targets, labels, positions)
    outcomes.paths = [sample_path(subset.base, subset.indices[int(i)])
                      for i in outcomes.positions()]
    outcomes.requested = len(subset)
    return outcomes
