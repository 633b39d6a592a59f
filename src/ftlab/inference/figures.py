"""`ftlab eval`'s figures: the confusion matrix and the reliability diagram."""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

ANNOTATE_UP_TO = 20
"""Classes up to which every cell of the confusion matrix shows its count."""


def draw_confusion(counts: torch.Tensor, classes: list[str], title: str) -> Figure:
    """Rows normalised to the true class (so small classes read as well as large ones),
    every class named; the figure grows with the classes, so 200 classes stay legible in
    the SVG (zoom in) and the PNG. The last column is `other`."""
    n = len(classes)
    side = min(28.0, max(5.5, 3.0 + 0.11 * n))
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = figure.subplots()
    totals = counts.sum(dim=1, keepdim=True).clamp(min=1)
    shares = (counts.float() / totals).numpy()
    # A square-root scale: with many classes the off-diagonal shares are small, and a
    # linear scale would leave every confusion invisible beside the diagonal.
    image = ax.imshow(shares, cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0),
                      aspect="auto", interpolation="nearest")
    font = max(3.0, min(9.0, 520.0 / max(n, 1)))
    names = [*classes, "other"]
    ax.set_xticks(range(n + 1), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= ANNOTATE_UP_TO:
        for (row, column), count in _cells(counts):
            ax.text(column, row, str(count), ha="center", va="center", fontsize="small",
                    color="white" if shares[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=ax, shrink=0.6, label="share of the true class (square-root "
                    "scale)")
    figure.suptitle(title)
    return figure


def _cells(counts: torch.Tensor) -> list[tuple[tuple[int, int], int]]:
    return [((r, c), int(counts[r, c])) for r, c in (counts > 0).nonzero().tolist()]


def draw_reliability(bins: list[dict[str, Any]], ece: float, title: str) -> Figure:
    """Accuracy against confidence per bin (a calibrated network sits on the diagonal), the
    gap shaded, and below it how many images fell into each bin."""
    figure = Figure(figsize=(5.6, 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = 100.0 * (bins[0]["high"] - bins[0]["low"])
    centres = [100.0 * (b["low"] + b["high"]) / 2 for b in bins]
    filled = [(c, b) for c, b in zip(centres, bins) if b["images"]]
    top.bar([c for c, _ in filled], [b["accuracy"] for _, b in filled], width=width,
            edgecolor="black", linewidth=0.5, label="accuracy")
    top.bar([c for c, _ in filled], [abs(b["confidence"] - b["accuracy"]) for _, b in filled],
            bottom=[min(b["confidence"], b["accuracy"]) for _, b in filled], width=width,
            color="tab:red", alpha=0.35, label="gap to confidence")
    top.plot([0, 100], [0, 100], "k--", linewidth=0.8, label="calibrated")
    top.set_ylabel("accuracy (%)")
    top.set_xlim(0, 100)
    top.set_ylim(0, 100)
    top.legend(loc="upper left", fontsize="small")
    top.set_title(f"ECE {ece:.2f} %", fontsize="medium")
    bottom.bar(centres, [b["images"] for b in bins], width=width, color="grey")
    bottom.set_xlabel("confidence of the top-1 prediction (%)")
    bottom.set_ylabel("images")
    figure.suptitle(title)
    return figure
