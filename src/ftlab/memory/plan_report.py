"""`ftlab plan`'s files: plan.md (the answers), plan.csv (the same as data), plan_points.csv
(every measured step) and plan.png (peak against batch per strategy, and the budget)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from ftlab.config import PlanConfig
from ftlab.config.sizes import format_size
from ftlab.fileio import atomic_write_text, check_output_folder
from ftlab.memory.budget import Answer, PlanRow
from ftlab.runfiles import PLAN_CSV, PLAN_FIGURE, PLAN_MD, PLAN_POINTS
from ftlab.tables import markdown_table

MIB = 2**20


def plan_title(config: PlanConfig, device: str) -> str:
    return (f"What fits in {format_size(config.budget_bytes)}: {config.arch}, "
            f"{config.num_classes} classes, {config.optim}, device {device}")


def to_markdown(rows: Sequence[PlanRow], config: PlanConfig) -> str:
    header = ["strategy", "execution", "trainable params",
              f"largest batch at {config.resolution} px", "its step peak", "next batch"]
    if config.batch_size is not None:
        header += [f"largest resolution at batch {config.batch_size}", "its step peak"]
    return markdown_table(header, [_cells(row, config) for row in rows])


def _cells(row: PlanRow, config: PlanConfig) -> list[str]:
    name = row.strategy + _options_text(row) + (f" (= {row.same_as})" if row.same_as else "")
    cells = [name, row.execution, f"{row.trainable_params:,}",
             *_batch_cells(row, config)]
    if row.resolution is not None and config.batch_size is not None:
        answer = row.resolution
        peak = None if answer.largest is None else row.peak_at(config.batch_size, answer.largest)
        cells += [_answer_text(answer, row.peak_at(config.batch_size, _lowest(row, config)),
                               " px"), _mib(peak)]
    return cells


def _batch_cells(row: PlanRow, config: PlanConfig) -> list[str]:
    answer, resolution = row.batch, config.resolution
    if answer.largest is None:
        return [_answer_text(answer, row.points[0].peak, ""), "", ""]
    peak = row.peak_at(answer.largest, resolution)
    after = row.peak_at(answer.largest + 1, resolution)
    following = "" if answer.capped else (
        f"{answer.largest + 1}: {_mib(after)}" if after is not None else "over (fitted line)")
    return [_answer_text(answer, None, ""), _mib(peak), following]


def _answer_text(answer: Answer, smallest_peak: int | None, unit: str) -> str:
    if answer.largest is None:
        return f"none (smallest needs {_mib(smallest_peak)})"
    return f"{'≥ ' if answer.capped else ''}{answer.largest}{unit}"


def _lowest(row: PlanRow, config: PlanConfig) -> int:
    return min(p.resolution for p in row.points if p.batch_size == config.batch_size)


def _options_text(row: PlanRow) -> str:
    return (" (" + ", ".join(f"{k}={v}" for k, v in row.options.items()) + ")"
            if row.options else "")


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:,.1f} MiB"


CSV_FIELDS = ["strategy", "options", "execution", "same_as", "trainable_params", "resolution",
              "largest_batch", "batch_capped", "peak_bytes_at_largest_batch", "batch_size",
              "largest_resolution", "resolution_capped", "budget_bytes", "peak_method"]


def to_csv(rows: Sequence[PlanRow], config: PlanConfig) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        largest = row.batch.largest
        writer.writerow({
            "strategy": row.strategy, "options": json.dumps(row.options, sort_keys=True),
            "execution": row.execution, "same_as": row.same_as or "",
            "trainable_params": row.trainable_params, "resolution": config.resolution,
            "largest_batch": "" if largest is None else largest,
            "batch_capped": row.batch.capped,
            "peak_bytes_at_largest_batch": "" if largest is None else
            row.peak_at(largest, config.resolution),
            "batch_size": config.batch_size or "",
            "largest_resolution": "" if row.resolution is None or row.resolution.largest is None
            else row.resolution.largest,
            "resolution_capped": "" if row.resolution is None else row.resolution.capped,
            "budget_bytes": config.budget_bytes, "peak_method": row.method})
    return out.getvalue()


def points_csv(rows: Sequence[PlanRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["strategy", "execution", "batch_size", "resolution", "peak_bytes"])
    for row in rows:
        for point in row.points:
            writer.writerow([row.strategy, row.execution, point.batch_size, point.resolution,
                             point.peak])
    return out.getvalue()


def draw_plan(rows: Sequence[PlanRow], config: PlanConfig, title: str) -> Figure:
    """Peak against batch at the planned resolution, one line per measured step set (a
    strategy that shares another's step is named in its legend entry), the budget dashed."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for row in rows:
        if row.same_as:
            continue
        points = sorted((p.batch_size, p.peak / MIB) for p in row.points
                        if p.resolution == config.resolution)
        twins = [r.strategy for r in rows if r.same_as == row.strategy
                 and r.execution == row.execution]
        label = " = ".join([row.strategy, *twins]) + (
            f" ({row.execution})" if len(config.executions) > 1 else "")
        line, = axes.plot(*zip(*points), marker="o", markersize=3, label=label)
        if row.batch.largest is not None:
            axes.plot([row.batch.largest], [row.peak_at(row.batch.largest,
                                                        config.resolution) / MIB],
                      marker="*", markersize=11, color=line.get_color())
    axes.axhline(config.budget_bytes / MIB, color="black", linestyle="--", linewidth=1,
                 label=f"budget {format_size(config.budget_bytes)}")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel(f"batch size at {config.resolution} px (★ largest that fits)")
    axes.set_ylabel("measured step peak (MiB)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(alpha=0.3)
    return figure


def save_plan(rows: Sequence[PlanRow], config: PlanConfig, folder: Path, title: str
              ) -> list[Path]:
    """plan.md, plan.csv, plan_points.csv and plan.png in `folder` (new, empty, or an
    earlier plan's)."""
    check_output_folder(folder, PLAN_CSV, "plan")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in (PLAN_MD, PLAN_CSV, PLAN_POINTS, PLAN_FIGURE)]
    atomic_write_text(paths[0], f"# {title}\n\n{to_markdown(rows, config)}\n\n{METHOD}\n")
    atomic_write_text(paths[1], to_csv(rows, config))
    atomic_write_text(paths[2], points_csv(rows))
    draw_plan(rows, config, title).savefig(paths[3], dpi=110)
    return paths


METHOD = """Every answer is a measured training step (forward, loss, backward, optimizer
step) of the strategy as `ftlab train` prepares it, on random data: *its step peak* is
that step's. On CPU the peak is the most bytes the step's allocations held at once (the
profiler's allocation events) plus the tensors alive before it; on CUDA the allocator's
max_memory_allocated. *next batch* is the smallest batch measured over the budget (or, where
marked, put over it by the line through the measured steps nearest the answer). A strategy
marked (= other) takes exactly the other's step (the same parameters train in the same
modes) and shares its measurements. The process's own memory (Python, libraries, a CUDA
context) is not in the budget."""
