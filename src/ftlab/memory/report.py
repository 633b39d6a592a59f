"""`ftlab memory`: one row per strategy, batch size and execution mode, measured and
analytic side by side, as a Markdown table and a CSV file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftlab.config import MemoryConfig, OptimConfig, StrategyConfig
from ftlab.efficient import apply_memory_plan
from ftlab.errors import ConfigError
from ftlab.fileio import atomic_write_text, check_output_folder
from ftlab.memory.analytic import AnalyticMemory, analytic_memory
from ftlab.memory.measure import MeasuredMemory, measure_step
from ftlab.models import ArchAdapter, build_model, get_adapter
from ftlab.runfiles import MEMORY_CSV, MEMORY_MD, MemoryRecord, memory_csv
from ftlab.strategies import Strategy, get_strategy, prepare_model, strategy_names
from ftlab.tables import markdown_table
from ftlab.assembly import build_optimizer, check_step_fits, store_frozen_weights
from ftlab.optimization import OPTIMIZERS, optimizer_options
from ftlab.runtime import resolve_device

MIB = 2**20


@dataclass(frozen=True)
class MemoryRow:
    strategy: str
    batch_size: int
    execution: str
    trainable_params: int
    measured: MeasuredMemory
    analytic: AnalyticMemory


def strategy_config(name: str, options: Mapping[str, Any] | None = None) -> StrategyConfig:
    return StrategyConfig(name=name, options=dict(options or {}))


@dataclass
class StepSetup:
    """A model prepared as `ftlab train` prepares it, with an optimizer and a random batch."""

    model: torch.nn.Module
    strategy: Strategy
    adapter: ArchAdapter
    optimizer: torch.optim.Optimizer
    images: torch.Tensor
    labels: torch.Tensor

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(self.model(self.images), self.labels).backward()
        self.optimizer.step()


def setup_step(arch: str, strategy: str, batch_size: int, resolution: int, execution: str,
               *, options: Mapping[str, Any] | None = None, num_classes: int = 10,
               device: str = "cpu", seed: int = 0, optim: OptimConfig | None = None,
               frozen_weights: str = "fp32") -> StepSetup:
    """Args: options: the strategy's own options (strategy.* keys); unset ones default.
    optim: the optimizer (default Adam: its two moments are the usual state to count).
    frozen_weights: int8 stores frozen weights in 8 bits (efficient execution only: stock
    rows are PyTorch as it is)."""
    torch.manual_seed(seed)
    prepared = prepare_model(arch, None, strategy_config(strategy, options), num_classes,
                             resolution, seed=seed, load_weights=False)
    built, chosen = prepared.built, prepared.strategy
    model = built.model.to(device)
    chosen.set_train_mode(model)
    if execution == "efficient":
        store_frozen_weights(model, chosen, built.adapter, frozen_weights, quiet=True,
                             required=False)
        apply_memory_plan(model)
    optim = optim or OptimConfig(name="adam")
    optimizer = build_optimizer(chosen.param_groups(model, built.adapter, optim), optim)
    return StepSetup(model, chosen, built.adapter, optimizer,
                     torch.randn(batch_size, 3, resolution, resolution, device=device),
                     torch.randint(0, num_classes, (batch_size,), device=device))


def measure_row(arch: str, strategy: str, batch_size: int, resolution: int, execution: str,
                *, options: Mapping[str, Any] | None = None, frozen_bits: int = 32,
                num_classes: int = 10, device: str = "cpu", seed: int = 0,
                optim: OptimConfig | None = None, frozen_weights: str = "fp32") -> MemoryRow:
    """Build the model as `ftlab train` would, take one warm-up and one measured step."""
    run = setup_step(arch, strategy, batch_size, resolution, execution, options=options,
                     num_classes=num_classes, device=device, seed=seed, optim=optim,
                     frozen_weights=frozen_weights)
    try:
        measured = measure_step(run.model, run.optimizer, run.images, run.labels)
    except ValueError as err:  # BatchNorm in training mode with one value per channel
        if "more than 1 value per channel" not in str(err):
            raise
        raise ConfigError(f"{strategy} at batch {batch_size} and {resolution} px leaves a "
                          "training-mode BatchNorm with one value per channel; use a larger "
                          "--resolution or batch size") from None
    optim = optim or OptimConfig(name="adam")
    states = OPTIMIZERS.get(optim.name).states(optimizer_options(optim))
    analytic = analytic_memory(run.model, resolution, batch_size, frozen_bits=frozen_bits,
                               optimizer_states=states)
    trainable = sum(p.numel() for g in run.optimizer.param_groups for p in g["params"])
    return MemoryRow(strategy, batch_size, execution, trainable, measured, analytic)


def strategies_of(config: MemoryConfig) -> list[str]:
    """The strategies `config` names ("all": every registered one), each checked, with the
    architecture, before anything is measured."""
    get_adapter(config.arch)
    names = strategy_names() if config.strategies == ["all"] else list(config.strategies)
    for name in config.strategy_options:
        if name not in names:
            raise ConfigError(f"memory.strategy_options names {name!r}, which is not measured "
                              f"(strategies: {', '.join(names)}); add it or remove its options")
    for name in names:
        get_strategy(strategy_config(name, config.strategy_options.get(name)))
    return names


def check_fits(arch: str, batch_size: int, resolution: int, num_classes: int = 10,
               device: str = "cpu", fix: str = "use smaller --batch-sizes or --resolution"
               ) -> None:
    """Refuse a measurement that cannot fit before allocating it (`check_step_fits`)."""
    model = build_model(arch, None, num_classes, pretrained=False).model
    check_step_fits(model, batch_size, resolution, device,
                    what=f"measuring {arch} at batch {batch_size} and {resolution} px", fix=fix)


def memory_table(config: MemoryConfig) -> list[MemoryRow]:
    """Every row `config` asks for, after checking its names and that its largest batch fits;
    `device=auto` is resolved here."""
    names = strategies_of(config)
    device = memory_device(config)
    check_fits(config.arch, max(config.batch_sizes), config.resolution, config.num_classes,
               device)
    settings = {"frozen_bits": config.frozen_bits, "num_classes": config.num_classes,
                "device": device, "frozen_weights": config.frozen_weights}
    return [measure_row(config.arch, name, batch, config.resolution, execution,
                        options=config.strategy_options.get(name), **settings)
            for batch in config.batch_sizes for name in names
            for execution in config.executions]


def memory_device(config: MemoryConfig) -> str:
    return str(resolve_device(config.device))


def memory_title(config: MemoryConfig) -> str:
    """The heading of memory.md: every setting the numbers depend on."""
    return (f"Training memory: {config.arch}, {config.resolution} px, {config.num_classes} "
            f"classes, {_options_text(config)}, frozen weights at {config.frozen_bits} bit "
            f"(analytic){_storage_text(config)}, device {memory_device(config)}")


def _storage_text(config: MemoryConfig) -> str:
    return ("" if config.frozen_weights == "fp32" else
            f" and stored in {config.frozen_weights} (efficient rows)")


def _options_text(config: MemoryConfig) -> str:
    """The strategy options that differ from their defaults (`ftlab strategies NAME`)."""
    set_ = ["; ".join(f"{name} " + ", ".join(f"{k}={v}" for k, v in options.items())
                      for name, options in config.strategy_options.items() if options)]
    return f"strategy options {set_[0]}" if set_[0] else "default strategy options"


HEADER = ["strategy", "batch", "execution", "trainable params", "activations MiB",
          "analytic activations MiB", "params MiB", "frozen weights MiB", "grads MiB",
          "optimizer MiB", "peak MiB", "analytic total MiB"]


def _cells(row: MemoryRow) -> list[str]:
    m, a = row.measured, row.analytic
    return [row.strategy, str(row.batch_size), row.execution, f"{row.trainable_params:,}",
            _mib(m.activations), _mib(a.activations), _mib(m.parameters),
            _mib(m.frozen_weights), _mib(m.gradients),
            _mib(m.optimizer), _mib(m.peak), _mib(a.total)]


def to_markdown(rows: Sequence[MemoryRow]) -> str:
    return markdown_table(HEADER, [_cells(r) for r in rows])


def to_csv(rows: Sequence[MemoryRow]) -> str:
    return memory_csv([to_record(r) for r in rows])


def to_record(r: MemoryRow) -> MemoryRecord:
    """A row as memory.csv holds it (`ftlab.runfiles.MemoryRecord`)."""
    m, a = r.measured, r.analytic
    return MemoryRecord(
        strategy=r.strategy, batch_size=r.batch_size, execution=r.execution,
        trainable_params=r.trainable_params, activations_bytes=m.activations,
        analytic_activations_bytes=a.activations, parameters_bytes=m.parameters,
        gradients_bytes=m.gradients, optimizer_bytes=m.optimizer, peak_bytes=m.peak,
        peak_method=m.peak_method, analytic_parameters_bytes=a.parameters,
        analytic_gradients_bytes=a.gradients, analytic_optimizer_bytes=a.optimizer,
        analytic_total_bytes=a.total, frozen_weights_bytes=m.frozen_weights)


def save(rows: Sequence[MemoryRow], folder: Path, title: str) -> tuple[Path, Path]:
    """memory.md and memory.csv in `folder` (new, empty, or an earlier table's)."""
    check_output_folder(folder, MEMORY_CSV, "memory")
    folder.mkdir(parents=True, exist_ok=True)
    markdown, table = folder / MEMORY_MD, folder / MEMORY_CSV
    atomic_write_text(markdown, f"# {title}\n\n{to_markdown(rows)}\n\n{METHOD}\n")
    atomic_write_text(table, to_csv(rows))
    return markdown, table


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:,.1f}"


METHOD = """Measured: one warmed-up Adam step on random data. *activations*: tensors autograd
saves for backward, once per storage, parameters excluded. *params*, *grads*, *optimizer*:
storages of those tensors. *peak*: on CUDA the allocator's max_memory_allocated over the step;
on CPU the highest point of the PyTorch profiler's memory timeline of the step (tensors alive
before it counted once). *stock* runs torchvision's modules as they are;
*efficient* is `train.memory_efficient` (frozen convs keep no input, frozen BatchNorms fold
into them, ReLUs keep 1-bit masks). Analytic: TinyTL's per-layer count of what backward needs
(see docs/memory.md); *analytic total* adds parameters, gradients and Adam's two moments."""
