"""Choosing a sparse-update scheme under a memory budget (`ftlab sparse-scheme`), as
tiny-training does: measure what each candidate layer contributes and what it costs, then
choose the most contribution the budget buys (a multiple-choice knapsack).

- Base: the head and the biases of the last `bias_blocks` blocks (`sparse_update` with no
  weights), trained for `epochs` on the training split, scored on its validation part.
- Contribution of a layer: the same short run with that layer's whole weight training
  too; its gain is the validation top-1 it adds over the base. A fraction r of its output
  channels is credited r times the gain (measured at r = 1 only, to keep the analysis at
  one short run per layer: tiny-training measures each ratio; the linear credit
  under-rates small fractions, whose gain per channel is usually higher).
- Cost of (layer, fraction): the measured training-step peak (`ftlab.memory.probe`, at the
  run's batch and resolution) of base + that update, less the base's. Peaks do not add
  exactly, so the chosen scheme is measured whole, and while it exceeds the budget its
  item with the least gain per byte is dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ftlab.config import ExperimentConfig, StrategyConfig, load_config
from ftlab.config.sizes import format_size
from ftlab.errors import ConfigError
from ftlab.memory.probe import StepProbe, dataset_classes, experiment_spec
from ftlab.models import build_model
from ftlab.runtime import resolve_device
from ftlab.strategies.sparse_update import updatable_layers

log = logging.getLogger("ftlab")

FRACTIONS = (0.125, 0.25, 0.5, 1.0)
COST_UNIT = 16 * 1024
"""Bytes per knapsack unit: costs are rounded up to it (16 KiB: far below any layer's)."""


@dataclass(frozen=True)
class Item:
    layer: str
    fraction: float
    gain: float
    """Validation top-1 points credited (the layer's measured gain x fraction)."""
    cost: int
    """Measured step peak over the base's, bytes."""


@dataclass(frozen=True)
class Scheme:
    base_top1: float
    base_peak: int
    gains: dict[str, float]
    """Layer -> measured gain (points) of its whole weight over the base."""
    items: list[Item]
    chosen: list[Item]
    peak: int
    """Measured step peak of the chosen scheme."""
    budget: int
    bias_blocks: int

    @property
    def weights(self) -> list[str]:
        return _weights(self.chosen)


def knapsack(items: list[Item], capacity: int) -> list[Item]:
    """The items of most total gain whose costs fit `capacity`, at most one per layer
    (multiple-choice knapsack by dynamic programming over cost units)."""
    units = capacity // COST_UNIT
    best = [0.0] * (units + 1)
    picks: list[list[Item]] = [[] for _ in range(units + 1)]
    by_layer: dict[str, list[Item]] = {}
    for item in items:
        if item.gain > 0:
            by_layer.setdefault(item.layer, []).append(item)
    for options in by_layer.values():
        new_best, new_picks = best[:], [p[:] for p in picks]
        for item in options:
            need = -(-item.cost // COST_UNIT) if item.cost > 0 else 0
            for room in range(need, units + 1):
                value = best[room - need] + item.gain
                if value > new_best[room]:
                    new_best[room], new_picks[room] = value, picks[room - need] + [item]
        best, picks = new_best, new_picks
    return picks[units]


def choose_scheme(config: ExperimentConfig, budget: int, folder: Path, *,
                  bias_blocks: int = 6, search_blocks: int = 3, epochs: int = 1) -> Scheme:
    """Contribution analysis and knapsack for `config` (its data, model, batch size and
    resolution) under `budget` bytes of training-step peak; candidate layers are the
    convs and linears of the last `search_blocks` blocks. Short runs go under `folder`."""
    built = build_model(config.model.arch, None, 10, pretrained=False)
    layers = [name for name, block in updatable_layers(built.model, built.adapter).items()
              if block >= len(built.adapter.block_names(built.model)) - search_blocks]
    base_options = {"bias_blocks": bias_blocks, "weight_blocks": 0, "weights": []}
    base_peak = _peak(config, base_options)
    if base_peak > budget:
        raise ConfigError(f"the sparse-update base (head and the biases of the last "
                          f"{bias_blocks} blocks) needs {format_size(base_peak)} per training "
                          f"step, more than the budget of {format_size(budget)}; raise "
                          "--memory-budget, lower --bias-blocks, train.batch_size or "
                          "data.resolution")
    base_top1 = _short_run(config, base_options, folder / "base", epochs)
    gains = {layer: _short_run(config, {**base_options, "weights": [f"{layer}:1.0"]},
                               folder / layer, epochs) - base_top1 for layer in layers}
    items = [Item(layer, fraction, gains[layer] * fraction,
                  max(0, _peak(config, {**base_options, "weights": [f"{layer}:{fraction}"]})
                      - base_peak))
             for layer in layers for fraction in FRACTIONS]
    chosen = knapsack(items, budget - base_peak)
    peak = _peak(config, {**base_options, "weights": _weights(chosen)})
    while chosen and peak > budget:  # peaks do not add exactly: drop the least per byte
        chosen.remove(min(chosen, key=lambda i: i.gain / max(i.cost, 1)))
        peak = _peak(config, {**base_options, "weights": _weights(chosen)})
    return Scheme(base_top1, base_peak, gains, items, chosen, peak, budget, bias_blocks)


def _weights(items: list[Item]) -> list[str]:
    return [f"{item.layer}:{item.fraction:g}" for item in items]


def _peak(config: ExperimentConfig, options: dict) -> int:
    """The measured training-step peak of sparse_update with `options` under `config`."""
    strategy = StrategyConfig(name="sparse_update", options=options)
    spec = dataclasses.replace(experiment_spec(config, dataset_classes(config.data)),
                               strategy=strategy)
    probe = StepProbe(spec, resolve_device(config.train.device))
    return probe.peak(config.train.batch_size)


def _short_run(config: ExperimentConfig, options: dict, folder: Path, epochs: int) -> float:
    """Best validation top-1 of a short sparse_update run with `options` (no test)."""
    from ftlab.training import train

    values = _with_strategy(config)
    values["strategy"].update(options)
    values["train"].update(epochs=epochs, output_dir=str(folder.parent), run_name=folder.name,
                           evaluate_test=False, tensorboard=False)
    summary = train(load_config(None, [], base=values), overwrite=True)
    return float(summary["best_val_top1"])


def save_scheme(scheme: Scheme, config: ExperimentConfig, folder: Path) -> list[Path]:
    """scheme.json (every measurement), scheme.md (the table) and config.yaml (`config`
    with the chosen scheme: `ftlab train FOLDER/config.yaml` trains it)."""
    import json

    from ftlab.config import config_to_yaml
    from ftlab.fileio import atomic_write_text
    from ftlab.runfiles import SCHEME_CONFIG, SCHEME_JSON, SCHEME_MD

    chosen = load_config(None, [f"strategy.bias_blocks={scheme.bias_blocks}",
                                "strategy.weights=[" + ",".join(scheme.weights) + "]"],
                         base=_with_strategy(config))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / SCHEME_JSON, folder / SCHEME_MD, folder / SCHEME_CONFIG]
    atomic_write_text(paths[0], json.dumps(dataclasses.asdict(scheme), indent=1) + "\n")
    atomic_write_text(paths[1], scheme_markdown(scheme))
    atomic_write_text(paths[2], config_to_yaml(chosen))
    return paths


def _with_strategy(config: ExperimentConfig) -> dict:
    from ftlab.config import config_to_dict

    values = config_to_dict(config)
    values["strategy"] = {"name": "sparse_update", "norm_stats": config.strategy.norm_stats}
    return values


def scheme_markdown(scheme: Scheme) -> str:
    from ftlab.tables import markdown_table

    mib = 2**20
    rows = []
    for layer, gain in scheme.gains.items():
        costs = {i.fraction: i.cost for i in scheme.items if i.layer == layer}
        picked = next((f"{i.fraction:g}" for i in scheme.chosen if i.layer == layer), "–")
        rows.append([layer, f"{gain:+.2f}", *[f"{costs[f] / mib:,.2f}" for f in FRACTIONS],
                     picked])
    header = ["layer", "gain (val top-1 points, whole weight)",
              *[f"cost MiB at {f:g}" for f in FRACTIONS], "chosen fraction"]
    return (f"# Sparse-update scheme within {format_size(scheme.budget)}\n\n"
            f"Base (head, biases of the last {scheme.bias_blocks} blocks): val top-1 "
            f"{scheme.base_top1:.2f} %, step peak {scheme.base_peak / mib:,.2f} MiB. Chosen "
            f"scheme: step peak {scheme.peak / mib:,.2f} MiB; "
            f"strategy.weights=[{','.join(scheme.weights)}].\n\n"
            f"{markdown_table(header, rows)}\n\n{__doc__.split(chr(10) + chr(10), 1)[1]}")
