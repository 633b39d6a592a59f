"""The listings printed by `ftlab strategies`, `ftlab models` and `ftlab datasets`."""

from __future__ import annotations

import os
from pathlib import Path


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])


def strategies_table(model: str | None, num_classes: int) -> str:
    from ftlab.config import StrategyConfig
    from ftlab.strategies import strategy_class, strategy_names

    if model is None:
        return markdown_table(["strategy", "what trains"],
                              [[n, strategy_class(n).summary] for n in strategy_names()])
    rows = []
    for name in strategy_names():
        trainable, total = _count_for_strategy(model, num_classes, StrategyConfig(name=name))
        rows.append([name, f"{trainable:,}", f"{total:,}", f"{100 * trainable / total:.2f}%",
                     strategy_class(name).summary])
    return markdown_table(["strategy", "trainable", "total", "share", "what trains"], rows)


def _count_for_strategy(arch: str, num_classes: int, config) -> tuple[int, int]:
    from ftlab.models import build_model, count_parameters
    from ftlab.strategies import get_strategy

    strategy = get_strategy(config)
    built = build_model(arch, None, num_classes, pretrained=False)
    strategy.prepare(built.model, built.adapter)
    return count_parameters(built.model)


def models_table() -> str:
    from torchvision.models import get_model_weights

    from ftlab.models import architectures, get_adapter

    rows = []
    for arch in architectures():
        names = [m.name for m in get_model_weights(arch)]
        rows.append([arch, get_adapter(arch).family, ", ".join(names) + ", DEFAULT"])
    return markdown_table(["arch", "adapter", "model.weights (or a file, or none)"], rows)


def datasets_table(root: str | None) -> str:
    from ftlab.data import get_source, source_names

    base = Path(root or os.environ.get("FTLAB_DATA") or "data").expanduser()
    rows = []
    for name in source_names():
        source = get_source(name)
        present = source.present(base)
        state = "-" if present is None else ("yes" if present else "no")
        rows.append([name, state, source.layout, source.summary])
    return (f"data root: {base}\n"
            + markdown_table(["name", "present", "layout (ROOT = data.root)", "about"], rows))
