"""`ftlab.train()`: what `ftlab train` does, one function call away."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftlab.config import (
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    flatten,
    load_config,
    load_run_config,
)
from ftlab.errors import ConfigError, RunDirError
from ftlab.fileio import atomic_write_text
from ftlab.assembly import build_experiment, resolve_config
from ftlab.runtime import Distributed, StopFlag, distributed, ensure_console_log, resolve_device
from ftlab.training import rundir
from ftlab.runfiles import PartialEpoch
from ftlab.training.checkpoint import latest_checkpoint
from ftlab.training.runner import EpochHook, Trainer

log = logging.getLogger("ftlab")

# Settings that may change when a run is resumed: where things are and how long it trains,
# never what is trained or how (that would make the resumed run a different experiment).
RESUMABLE_KEYS = frozenset({
    "train.epochs", "train.device", "train.num_threads", "train.progress", "train.log_every",
    "train.tensorboard", "train.run_name", "train.output_dir", "data.num_workers",
    "data.root", "data.download", "model.weights",
})


def train(config: ExperimentConfig | Mapping[str, Any] | str | Path | None = None, *,
          overrides: Sequence[str] = (), resume: str | Path | None = None,
          overwrite: bool = False, on_epoch: EpochHook | None = None) -> dict[str, Any]:
    """Train one run and return its summary (the contents of summary.json, a
    `ftlab.runfiles.RunSummary` as a dict).

    Args:
        config: An `ExperimentConfig`, a mapping of sections, a YAML path, or None (defaults).
        overrides: Dotted `key=value` settings applied on top, as on the command line.
        resume: A run folder to continue from its last checkpoint; `config` must be None.
            With `train.epochs=N` in overrides, a finished run trains up to N epochs.
        overwrite: Start again in an existing run folder, deleting what it holds. Not needed
            to start a run prepared by `ftlab suite`: `config` is the config.yaml of the run
            folder it names, and that folder holds nothing else.
        on_epoch: Called after each epoch (every epoch of the run, on resume those trained
            before too) with its metrics row; returning True ends the run there, with
            status "pruned" (how `ftlab tune` prunes a trial).

    Raises:
        FtlabError: bad configuration, data, weights or run folder (one-line message).
    """
    ensure_console_log()
    if resume is not None:
        if config is not None:
            raise ConfigError("give either a config or --resume RUN_DIR, not both: a resumed "
                              "run keeps its saved config (change train.epochs by override)")
        return _resume(Path(resume), overrides, on_epoch)
    # A run folder holding only this file (prepared by `ftlab suite`) is the run's own.
    config_file = Path(config) if isinstance(config, (str, Path)) else None
    config = resolve_config(_as_config(config, overrides))
    with _process_group(config) as dist, StopFlag().installed() as stop:
        path = rundir.run_dir_path(config.train.output_dir, config.run_name)
        if dist.is_main:
            rundir.check_can_create(path, overwrite, config_file)
        experiment = build_experiment(config, dist=dist)
        with _locked(path, dist):
            if dist.is_main:
                rundir.create_run_dir(path, overwrite, config_file)
                # First, so that a run killed from here on can always be resumed.
                atomic_write_text(path / rundir.CONFIG, config_to_yaml(config))
            dist.barrier()  # the folder exists (and is empty) before anyone works in it
            with _log_file(path, dist):
                _log_start(experiment, path, resumed_from=0)
                return Trainer(experiment, path, stop=stop, on_epoch=on_epoch).fit().to_dict()


def _as_config(config: ExperimentConfig | Mapping[str, Any] | str | Path | None,
               overrides: Sequence[str]) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return config_from_dict(config_to_dict(config), overrides) if overrides else config
    if isinstance(config, Mapping):
        return load_config(None, overrides, base=config)
    return load_config(config, overrides)


def _resume(path: Path, overrides: Sequence[str], on_epoch: EpochHook | None
            ) -> dict[str, Any]:
    run_dir = rundir.existing_run_dir(path)
    saved = resolve_config(load_run_config(run_dir / rundir.CONFIG))
    config = resolve_config(load_run_config(run_dir / rundir.CONFIG, overrides))
    _check_resume_changes(config_to_dict(saved), config_to_dict(config), run_dir)
    with _process_group(config) as dist, StopFlag().installed() as stop, \
            _locked(run_dir, dist), _log_file(run_dir, dist):
        checkpoint = latest_checkpoint(run_dir)
        done = checkpoint.epoch if checkpoint else 0
        if done > config.train.epochs:
            raise ConfigError(f"{run_dir} has already trained {done} epochs; train.epochs must "
                              f"be at least {done} to resume it")
        experiment = build_experiment(config, load_weights=checkpoint is None, dist=dist)
        _log_start(experiment, run_dir, resumed_from=done,
                   partial=checkpoint.partial if checkpoint else None)
        return Trainer(experiment, run_dir, checkpoint, stop=stop,
                       on_epoch=on_epoch).fit().to_dict()


@contextmanager
def _locked(path: Path, dist: Distributed) -> Iterator[None]:
    """Rank 0 holds the run folder's lock for the whole run."""
    if dist.is_main:
        with rundir.locked(path):
            yield
    else:
        yield


def _check_resume_changes(saved: dict[str, Any], wanted: dict[str, Any], run_dir: Path) -> None:
    before = flatten(saved)
    changed = [key for key, value in flatten(wanted).items()
               if before.get(key) != value and key not in RESUMABLE_KEYS]
    if changed:
        raise RunDirError(f"cannot change {changed[0]} when resuming {run_dir}: only "
                          f"{', '.join(sorted(RESUMABLE_KEYS))} may change; start a new run "
                          "(another train.run_name) to change anything else")


def _log_start(experiment, run_dir: Path, resumed_from: int,
               partial: PartialEpoch | None = None) -> None:
    config = experiment.config
    trainable, total = experiment.parameter_counts()
    sizes = experiment.data.sizes()
    action = f"resuming after epoch {resumed_from}" if resumed_from else "starting"
    if partial:
        action = f"resuming in epoch {partial.epoch} after step {partial.tally['steps']}"
    log.info("ftlab: %s %s", action, run_dir)
    log.info("model %s, weights %s, strategy %s: %s of %s parameters train (%.1f%%)",
             config.model.arch, experiment.built.weights.describe(), config.strategy.name,
             f"{trainable:,}", f"{total:,}", 100.0 * trainable / total)
    log.info("data %s: %d train / %d val / %d test images, %d classes, %d px; device %s",
             config.data.name, sizes["train"], sizes["val"], sizes["test"],
             experiment.data.num_classes, experiment.data.input.resolution,
             experiment.settings.device)
    augmentation = experiment.data.augmentation
    spec = experiment.data.input
    log.info("augment %s: %s; evaluation resizes to %d px and centre-crops %d px",
             augmentation.name, augmentation.description, spec.eval_resize, spec.resolution)


@contextmanager
def _process_group(config: ExperimentConfig) -> Iterator[Distributed]:
    """This process's place in a torchrun launch (alone without torchrun).

    Processes other than rank 0 log only warnings, so a run prints each line once.
    """
    dist = distributed.from_environment(resolve_device(config.train.device).type)
    level = log.level
    if not dist.is_main:
        log.setLevel(logging.WARNING)
    try:
        yield dist
    finally:
        log.setLevel(level)
        distributed.shutdown()


@contextmanager
def _log_file(run_dir: Path, dist: Distributed) -> Iterator[None]:
    """Also append every log line of this run to <run>/log.txt (rank 0 alone writes it)."""
    if not dist.is_main:
        yield
        return
    handler = logging.FileHandler(run_dir / rundir.LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
