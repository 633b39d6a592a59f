"""The training memory of a run, measured like `ftlab memory` at the run's own settings.

A run's process RSS says little about what its strategy costs (Python, the framework and the
data loaders dominate it on a CPU). So each run of a suite also gets `train_memory.csv`: one
row per execution (stock autograd, and memory-efficient as the run executed), measured on one
step of its architecture, strategy and options, batch size, resolution, classes and
optimizer, with random weights and data (memory does not depend on their values). Runs that
differ only in seed or hyperparameter values share one measurement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from ftlab.config import ExperimentConfig, config_to_dict, load_config
from ftlab.fileio import atomic_write_text
from ftlab.memory.blocks import config_architecture
from ftlab.memory.report import measure_row, to_record
from ftlab.runfiles import ARCHITECTURE, CONFIG, RUN_MEMORY, MemoryRecord, RunFolder, memory_csv
from ftlab.runtime import resolve_device

log = logging.getLogger("ftlab")


def measure_runs(run_dirs: Iterable[Path]) -> int:
    """Write train_memory.csv and architecture.json (its blocks and their activation memory,
    for the report's architecture figures) into each complete run folder that lacks them;
    returns how many settings were measured."""
    memory: dict[str, list[MemoryRecord]] = {}
    blocks: dict[str, str] = {}
    for run_dir in run_dirs:
        folder = RunFolder(run_dir)
        wanted = [name for name in (RUN_MEMORY, ARCHITECTURE) if not (run_dir / name).is_file()]
        if not folder.complete or not wanted:
            continue
        config = load_config(run_dir / CONFIG)
        summary = folder.run_summary
        key = _key(config, summary.resolution, summary.num_classes)
        if RUN_MEMORY in wanted:
            if key not in memory:
                log.info("measuring the training memory of %s", run_dir.name)
                memory[key] = run_memory(config, summary.resolution, summary.num_classes)
            atomic_write_text(run_dir / RUN_MEMORY, memory_csv(memory[key]))
        if ARCHITECTURE in wanted:
            if key not in blocks:
                blocks[key] = config_architecture(config, summary.num_classes,
                                                  summary.resolution).to_json()
            atomic_write_text(run_dir / ARCHITECTURE, blocks[key])
    return len(set(memory) | set(blocks))


def run_memory(config: ExperimentConfig, resolution: int, num_classes: int
               ) -> list[MemoryRecord]:
    """Stock and memory-efficient rows for one step of `config` at `resolution`."""
    device = str(resolve_device(config.train.device))
    return [to_record(measure_row(config.model.arch, config.strategy.name,
                                  config.train.batch_size, resolution, execution,
                                  options=config.strategy.options, num_classes=num_classes,
                                  device=device, optim=config.optim,
                                  frozen_weights=config.train.frozen_weights))
            for execution in ("stock", "efficient")]


def _key(config: ExperimentConfig, resolution: int, num_classes: int) -> str:
    values = config_to_dict(config)
    return json.dumps({"arch": values["model"]["arch"], "strategy": values["strategy"],
                       "batch": values["train"]["batch_size"], "resolution": resolution,
                       "classes": num_classes, "optim": values["optim"]["name"],
                       "device": values["train"]["device"],
                       "frozen_weights": values["train"]["frozen_weights"]}, sort_keys=True)
