"""Learning curves of runs on shared axes, as PNG and SVG (matplotlib), plus the data drawn.

Every figure is saved with a JSON file of exactly the series it shows, so a plot can be
checked against the runs it came from, and a reader can re-plot it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ftlab.fileio import atomic_write_text
from ftlab.runfiles import RunFolder

METRIC_LABELS = {
    "val_top1": "validation top-1 (%)", "val_top5": "validation top-5 (%)",
    "train_top1": "training top-1 (%)", "val_loss": "validation loss",
    "train_loss": "training loss",
}


@dataclass(frozen=True)
class Curve:
    label: str
    epochs: list[float]
    values: list[float]


@dataclass(frozen=True)
class Panel:
    metric: str
    curves: list[Curve]


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average (weight 0: none)."""
    if weight <= 0:
        return list(values)
    smoothed, last = [], 0.0
    for count, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**count))
    return smoothed


def run_panels(runs: Sequence[RunFolder], metrics: Sequence[str], labels: Sequence[str],
               smoothing: float = 0.0) -> list[Panel]:
    """One panel per metric, one curve per run (skipping runs without that metric)."""
    panels = []
    for metric in metrics:
        curves = []
        for run, label in zip(runs, labels):
            epochs, values = run.series(metric)
            if values:
                curves.append(Curve(label, epochs, smooth(values, smoothing)))
        panels.append(Panel(metric, curves))
    return panels


def draw(panels: Sequence[Panel], title: str) -> Figure:
    """Side-by-side panels sharing the epoch axis; one legend naming every curve."""
    figure = Figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for curve in panel.curves:
            ax.plot(curve.epochs, curve.values, marker="o", markersize=3, label=curve.label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRIC_LABELS.get(panel.metric, panel.metric))
        ax.grid(alpha=0.3)
        if _integral(panel):
            ax.xaxis.get_major_locator().set_params(integer=True)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="outside right upper", fontsize="small")
    figure.suptitle(title)
    return figure


def save(figure: Figure, panels: Sequence[Panel], stem: Path) -> list[Path]:
    """stem.png, stem.svg and stem.json (the series drawn)."""
    return save_data(figure, {"panels": [asdict(p) for p in panels]}, stem)


def save_data(figure: Figure, data: dict, stem: Path) -> list[Path]:
    """stem.png, stem.svg and stem.json (`data`, what the figure draws, with its title)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=120)
    figure.savefig(paths[1])
    atomic_write_text(stem.with_suffix(".json"),
                      json.dumps({"title": figure.get_suptitle(), **data}, indent=1) + "\n")
    return paths + [stem.with_suffix(".json")]


@dataclass(frozen=True)
class Point:
    """A strategy in a trade-off figure: its cost, its accuracy and the accuracy's 95 %
    interval half-width (None from one seed)."""

    label: str
    cost: float
    value: float
    half_width: float | None
    optimal: bool
    """On the Pareto front: no other point is both cheaper and more accurate."""


def draw_tradeoff(points: Sequence[Point], cost_label: str, title: str) -> Figure:
    """Accuracy against a cost, error bars the 95 % intervals, the Pareto front joined and
    its points filled; a log cost axis when the costs span more than 10x."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for point in points:
        ax.errorbar(point.cost, point.value, yerr=point.half_width or 0.0, fmt="o",
                    markersize=7, capsize=3, mfc=None if point.optimal else "white",
                    label=point.label + (" (Pareto)" if point.optimal else ""))
        ax.annotate(point.label, (point.cost, point.value), textcoords="offset points",
                    xytext=(6, 4), fontsize="small")
    front = sorted((p for p in points if p.optimal), key=lambda p: p.cost)
    ax.plot([p.cost for p in front], [p.value for p in front], "k--", linewidth=0.8,
            label="Pareto front")
    costs = [p.cost for p in points]
    if costs and min(costs) > 0 and max(costs) / min(costs) > 10:
        _log_axis(ax)
    ax.set_xlabel(cost_label)
    ax.set_ylabel("test top-1 (%), mean ± 95 % CI")
    ax.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    figure.suptitle(title)
    return figure


def draw_history(histories: dict[str, list[tuple[int, float]]], title: str,
                 trials: dict[str, list[tuple[float, float, bool]]] | None = None,
                 key: str = "") -> Figure:
    """Left: best validation top-1 so far against trial number, one line per study. Right
    (with `trials`): every trial's validation top-1 against its value of `key` (log axis),
    pruned trials hollow: how much that hyperparameter mattered."""
    figure = Figure(figsize=(11.0 if trials else 6.4, 4.0), layout="constrained")
    axes = figure.subplots(1, 2 if trials else 1, squeeze=False)[0]
    for label, points in histories.items():
        axes[0].step([p[0] for p in points], [p[1] for p in points], where="post",
                     marker="o", markersize=3, label=label)
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel("best validation top-1 so far (%)")
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    axes[0].grid(alpha=0.3)
    if trials:
        for (label, points), line in zip(trials.items(), axes[0].get_lines()):
            for x, y, complete in points:
                axes[1].plot(x, y, "o", color=line.get_color(), markersize=5,
                             mfc=line.get_color() if complete else "white")
        _log_axis(axes[1])
        axes[1].set_xlabel(f"{key} (hollow: pruned, at its last epoch)")
        axes[1].set_ylabel("validation top-1 (%)")
        axes[1].grid(alpha=0.3)
    if histories:
        figure.legend(loc="outside right upper", fontsize="small")
    figure.suptitle(title)
    return figure


def plot_runs(run_dirs: Sequence[Path], metrics: Sequence[str], output: Path,
              labels: Sequence[str] | None = None, smoothing: float = 0.0,
              title: str | None = None) -> tuple[Figure, list[Path]]:
    """`ftlab plot`: the chosen metrics of the chosen runs, saved as PNG, SVG and JSON."""
    runs = [RunFolder(Path(d)) for d in run_dirs]
    names = list(labels) if labels else [r.name for r in runs]
    panels = run_panels(runs, metrics, names, smoothing)
    figure = draw(panels, title or ", ".join(names))
    return figure, save(figure, panels, output)


def _log_axis(ax) -> None:
    """A log x axis labelled in plain numbers (0.001, not mathtext powers of ten, whose
    fonts a minimal matplotlib install lacks)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _integral(panel: Panel) -> bool:
    return all(math.isclose(e, round(e)) for c in panel.curves for e in c.epochs)
