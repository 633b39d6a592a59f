"""The architecture figure and table of `ftlab arch` and the report, drawn from
architecture.json (`ArchitectureRecord`) alone.

Left, the network from input (top) to head: one box per block, coloured by what trains in
it, with inserted modules (TinyTL's lite residuals) as side paths that leave the block's
input and join its output. Right, per block, the activation memory backward keeps: stock
PyTorch, ftlab's memory-efficient execution, and the analytic need.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ftlab.fileio import atomic_write_text
from ftlab.report.collect import RunRecord
from ftlab.runfiles import ARCHITECTURE, ArchitectureRecord, BlockRecord, read_architecture
from ftlab.tables import markdown_table

MIB = 2**20
FROZEN, PARTLY, TRAINS, BRANCH = "#d9d9d9", "#c7e9c0", "#41ab5d", "#fd8d3c"


def trained_share(block: BlockRecord) -> float:
    trainable = sum(counts[0] for kind, counts in block.params.items() if kind != "inserted")
    total = sum(counts[1] for kind, counts in block.params.items() if kind != "inserted")
    return trainable / total if total else 0.0


def trains_text(block: BlockRecord) -> str:
    """What trains in the block, by kind: "all", "none", or e.g. "biases, norms"."""
    kinds = [kind for kind, (trainable, total) in block.params.items()
             if kind != "inserted" and total]
    trained = [kind for kind in kinds if block.params[kind][0]]
    inserted = block.params.get("inserted", [0, 0])
    if not kinds and inserted[1]:  # a block the strategy added (VPT's prompts)
        return f"inserted {inserted[0]:,}/{inserted[1]:,}"
    if not trained:
        return "frozen"
    if all(block.params[k][0] == block.params[k][1] for k in kinds):
        return "all"
    return ", ".join(f"{k} {block.params[k][0]:,}/{block.params[k][1]:,}" for k in trained)


def block_label(block: BlockRecord) -> str:
    shape = "x".join(map(str, block.out_shape))
    expand = f" t={block.expand:g}" if block.expand else ""
    stride = f" s={block.stride}" if block.stride > 1 else ""
    return f"{block.name}  {block.kind}{expand}{stride}  {block.in_shape[0]}->{shape}"


def draw_architecture(record: ArchitectureRecord) -> Figure:
    blocks = record.blocks
    height = max(4.0, 0.42 * len(blocks) + 1.6)
    figure = Figure(figsize=(15.0, height), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=[2.4, 1.0])
    for row, block in enumerate(blocks):
        _draw_block(left, row, block)
    left.set_xlim(-0.02, 1.62)
    left.set_ylim(len(blocks) - 0.4, -0.6)
    left.axis("off")
    left.set_title("blocks (input at the top) — green: trains, grey: frozen, "
                   "orange: inserted side path", fontsize="small")
    rows = list(range(len(blocks)))
    for offset, key, colour, label in ((-0.2, "stock_bytes", "grey", "stock PyTorch"),
                                       (0.2, "efficient_bytes", "tab:blue",
                                        "ftlab memory-efficient")):
        right.barh([r + offset for r in rows], [getattr(b, key) / MIB for b in blocks],
                   height=0.38, color=colour, label=label)
    right.plot([b.analytic_bytes / MIB for b in blocks], rows, "k|", markersize=9,
               label="analytic need")
    right.set_xlabel(f"activations kept for backward (MiB), batch {record.batch_size}")
    right.grid(axis="x", alpha=0.3)
    right.legend(loc="lower right", fontsize="small")
    totals = [sum(getattr(b, k) for b in blocks) / MIB
              for k in ("stock_bytes", "efficient_bytes", "analytic_bytes")]
    right.set_title("total: stock {:.1f}, efficient {:.1f}, analytic {:.1f} MiB".format(*totals),
                    fontsize="small")
    figure.suptitle(record.title)
    return figure


def _draw_block(ax, row: int, block: BlockRecord) -> None:
    share = trained_share(block)
    colour = TRAINS if share == 1.0 else PARTLY if share > 0 else FROZEN
    ax.add_patch(FancyBboxPatch((0.0, row - 0.36), 1.0, 0.72, boxstyle="round,pad=0.0,"
                                "rounding_size=0.05", facecolor=colour, edgecolor="black",
                                linewidth=0.6))
    trains = trains_text(block)
    ax.text(0.02, row, block_label(block), va="center", fontsize="small", family="monospace")
    ax.text(0.98, row, trains, va="center", ha="right", fontsize="x-small")
    if row > 0:
        ax.annotate("", (0.5, row - 0.36), (0.5, row - 0.64),
                    arrowprops={"arrowstyle": "->", "linewidth": 0.6})
    for branch in block.branches[:1]:
        layers = ", ".join(branch["layers"][:2] + branch["layers"][-2:-1])
        ax.add_patch(FancyBboxPatch((1.1, row - 0.3), 0.5, 0.6, boxstyle="round,pad=0.0,"
                                    "rounding_size=0.05", facecolor=BRANCH,
                                    edgecolor="black", linewidth=0.6))
        count = f"{len(block.branches)} x " if len(block.branches) > 1 else ""
        ax.text(1.12, row, f"{count}{branch['kind']} ({branch['params']:,}): {layers}",
                va="center", fontsize="xx-small")
        ax.add_patch(FancyArrowPatch((1.0, row - 0.3), (1.1, row - 0.2),
                                     arrowstyle="->", mutation_scale=6, linewidth=0.6))
        ax.add_patch(FancyArrowPatch((1.1, row + 0.2), (1.0, row + 0.3),
                                     arrowstyle="->", mutation_scale=6, linewidth=0.6))


def _branches_text(block: BlockRecord) -> str:
    """One branch in full; several (a stage of blocks) counted, the first shown."""
    if not block.branches:
        return ""
    first = block.branches[0]
    count = f"{len(block.branches)} x " if len(block.branches) > 1 else ""
    params = sum(b["params"] for b in block.branches)
    return f"{count}{first['kind']} ({params:,} params; {', '.join(first['layers'])})"


def save_architecture(record: ArchitectureRecord, folder: Path) -> list[Path]:
    """architecture.json (the record: what the figure draws), .png, .svg and .md (the
    table); architecture.json last, as it marks a complete output."""
    folder.mkdir(parents=True, exist_ok=True)
    figure = draw_architecture(record)
    stem = folder / Path(ARCHITECTURE).stem
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg"), stem.with_suffix(".md")]
    figure.savefig(paths[0], dpi=110)
    figure.savefig(paths[1])
    atomic_write_text(paths[2], f"# {record.title}\n\n{architecture_table(record)}\n")
    atomic_write_text(folder / ARCHITECTURE, record.to_json())
    return [*paths, folder / ARCHITECTURE]


def architecture_table(record: ArchitectureRecord) -> str:
    """The figure as a Markdown table, for the terminal and the report."""
    header = ["block", "module", "in -> out", "t", "stride", "trains", "inserted",
              "stock MiB", "efficient MiB", "analytic MiB"]
    rows = []
    for block in record.blocks:
        inserted = _branches_text(block)
        rows.append([block.name, block.kind,
                     f"{'x'.join(map(str, block.in_shape))} -> "
                     f"{'x'.join(map(str, block.out_shape))}",
                     f"{block.expand:g}" if block.expand else "", str(block.stride),
                     trains_text(block), inserted or "",
                     *(f"{getattr(block, k) / MIB:.2f}"
                       for k in ("stock_bytes", "efficient_bytes", "analytic_bytes"))])
    totals = [sum(getattr(b, k) for b in record.blocks) / MIB
              for k in ("stock_bytes", "efficient_bytes", "analytic_bytes")]
    rows.append(["total", "", "", "", "", "", "", *(f"{t:.2f}" for t in totals)])
    return markdown_table(header, rows)


def architecture_section(records: list[RunRecord], figures: Path) -> str:
    """Per strategy, the network as its first complete run trained it (that run's
    architecture.json, written by the suite): blocks, what trains, side paths, and the
    activation memory per block."""
    chosen: dict[str, ArchitectureRecord] = {}
    for record in sorted(records, key=lambda r: (r.strategy, r.name)):
        path = record.folder.path / ARCHITECTURE
        if record.complete and record.strategy not in chosen and path.is_file():
            chosen[record.strategy] = read_architecture(path)
    if not chosen:
        return ""
    rows, parts = [], []
    for strategy, record in chosen.items():
        totals = [sum(getattr(b, k) for b in record.blocks) / MIB
                  for k in ("stock_bytes", "efficient_bytes", "analytic_bytes")]
        trained = sum(1 for b in record.blocks if b.trains)
        branched = sum(1 for b in record.blocks if b.branches)
        rows.append([strategy, record.arch, f"{record.batch_size} x {record.resolution} px",
                     f"{trained}/{len(record.blocks)}", str(branched),
                     *(f"{t:.1f}" for t in totals)])
        stem = figures / f"architecture-{re.sub(r'[^A-Za-z0-9._-]+', '-', strategy)}"
        figures.mkdir(parents=True, exist_ok=True)
        draw_architecture(record).savefig(stem.with_suffix(".png"), dpi=90)
        atomic_write_text(stem.with_suffix(".json"), record.to_json())
        parts.append(f"### {strategy}\n\n![{record.title}](figures/{stem.name}.png)")
    header = ["strategy", "arch", "batch", "blocks that train", "blocks with side paths",
              "stock MiB", "efficient MiB", "analytic MiB"]
    return ("## Architecture and activation memory per block\n\nEach strategy's network as "
            "its run trained it (`ftlab arch RUN` draws one): the blocks from input to head, "
            "what trains in each, inserted side paths, and the activations one training step "
            "keeps for backward per block, measured with stock PyTorch modules and with "
            "ftlab's memory-efficient execution, beside the analytic need.\n\n"
            + markdown_table(header, rows) + "\n\n" + "\n\n".join(parts))
