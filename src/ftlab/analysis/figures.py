"""Figures of a parameter comparison: per-layer curves across depth, and a CKA heatmap.
Each is saved as PNG and SVG with a JSON file of the numbers drawn."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from ftlab.analysis.params import LayerRow
from ftlab.fileio import atomic_write_text


def layer_figure(rows: list[LayerRow], title: str, labels: tuple[str, str, str | None]
                 ) -> tuple[Figure, dict]:
    """Left: similarity of A and B per layer (conv/linear weights and their filter subspaces;
    biases, i.e. mostly norm β); right: relative change of conv/linear weights between A and
    B, or of each from the reference. The x axis is the layer's depth (state_dict order)."""
    body = [r for r in rows if not r.note]
    weights = [r for r in body if r.kind in ("conv", "linear")]
    biases = [r for r in body if r.bias_cosine is not None]
    figure = Figure(figsize=(12, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    series = {"weight cosine (conv, linear)": (weights, [r.weight_cosine for r in weights]),
              "filter-subspace similarity": (weights, [r.subspace_similarity for r in weights]),
              "bias cosine": (biases, [r.bias_cosine for r in biases])}
    moved = {"||A - B|| / ||B||": (weights, [r.relative_change for r in weights])}
    if labels[2]:
        moved = {f"A ({labels[0]}) from the reference": (weights, [r.a_moved for r in weights]),
                 f"B ({labels[1]}) from the reference": (weights, [r.b_moved for r in weights])}
    for ax, curves in ((left, series), (right, moved)):
        for name, (chosen, values) in curves.items():
            _plot(ax, [r.index for r in chosen], values, name)
        ax.set_xlabel("layer depth (input to output)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    left.set_ylabel("similarity of A and B")
    right.set_ylabel("relative change of conv/linear weights")
    right.set_yscale("symlog", linthresh=1e-3)
    figure.suptitle(f"A: {labels[0]}   B: {labels[1]}"
                    + (f"   reference: {labels[2]}" if labels[2] else ""))
    data = {"title": title, **{name: {"layers": [r.layer for r in chosen], "values": values}
                               for name, (chosen, values) in {**series, **moved}.items()}}
    return figure, data


def cka_figure(matrix: list[list[float]], title: str, labels: tuple[str, str]
               ) -> tuple[Figure, dict]:
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, origin="lower", vmin=0.0, vmax=1.0, cmap="magma")
    ax.set_xlabel(f"{labels[1]} block")
    ax.set_ylabel(f"{labels[0]} block")
    figure.colorbar(image, ax=ax, label="linear CKA")
    figure.suptitle(title)
    return figure, {"title": title, "rows": labels[0], "columns": labels[1], "cka": matrix}


def save(figure: Figure, data: dict, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg"), stem.with_suffix(".json")]
    figure.savefig(paths[0], dpi=120)
    figure.savefig(paths[1])
    atomic_write_text(paths[2], json.dumps(data, indent=1) + "\n")
    return paths


def _plot(ax, x: list[int], values: list[float | None], name: str) -> None:
    points = [(i, v) for i, v in zip(x, values) if v is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
