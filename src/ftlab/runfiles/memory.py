"""The typed rows of memory.csv, the table `ftlab memory` (and a suite's memory step) writes
and `ftlab report` reads.

A CSV file has no place for a version of its own, so each row carries it: the last column,
`format_version`, holds the same number on every row. Spreadsheets and pandas read it like
any other column, and readers that pick columns by name (ftlab 0.1's report among them)
ignore it. Files of ftlab 0.1 have no such column: version 1.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.fields import field_values
from ftlab.runfiles.versions import checked_version

MEMORY_VERSION = 1
"""The memory.csv layout this code writes; 1 is also ftlab 0.1's, which had no column."""


@dataclass(frozen=True, kw_only=True)
class MemoryRecord:
    """One row: a strategy at a batch size, in one execution mode; bytes throughout."""

    strategy: str
    batch_size: int
    execution: str
    """stock (torchvision's modules as they are) or efficient (`train.memory_efficient`)."""
    trainable_params: int
    activations_bytes: int
    """Measured: the tensors autograd saves for backward."""
    analytic_activations_bytes: int
    parameters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    peak_bytes: int | None
    """The step's measured peak; None where the device cannot say."""
    peak_method: str
    analytic_parameters_bytes: int
    analytic_gradients_bytes: int
    analytic_optimizer_bytes: int
    analytic_total_bytes: int
    frozen_weights_bytes: int | None = None
    """Measured: the frozen parameters as stored (int8 weights and their scales with
    train.frozen_weights=int8); None in tables written before the column existed."""
    format_version: int = MEMORY_VERSION

    @classmethod
    def from_row(cls, row: dict[str, Any], source: object) -> MemoryRecord:
        """A row as `csv.DictReader` gives it (every cell a string; empty means None)."""
        if None in row or None in row.values():
            raise RunDirError(f"{source} is not a readable memory table: a row's cells do not "
                              "match its header (a damaged file); run ftlab memory again")
        checked_version(row, MEMORY_VERSION, "memory table", source, RunDirError)
        text = {f.name for f in fields(cls) if f.type == "str"}
        values = {k: v if k in text else _cell(v) for k, v in row.items()}
        return cls(**field_values(cls, values, "memory table", source, RunDirError))


def memory_csv(records: list[MemoryRecord]) -> str:
    """The text of memory.csv: a header of the field names, one line per record."""
    names = [f.name for f in fields(MemoryRecord)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for record in records:
        writer.writerow(["" if getattr(record, n) is None else getattr(record, n) for n in names])
    return buffer.getvalue()


def read_memory_csv(path: Path) -> list[MemoryRecord]:
    """The rows of a memory.csv, checked; one line naming the file when they cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RunDirError(f"{path} cannot be read ({err}); run ftlab memory again to rewrite "
                          "it") from None
    return [MemoryRecord.from_row(row, path) for row in rows]


def _cell(cell: str) -> int | str | None:
    """A number cell: empty is None, an integer an int; anything else stays a string, for
    the field check to name."""
    if cell == "":
        return None
    try:
        return int(cell)
    except ValueError:
        return cell


__all__ = ["MEMORY_VERSION", "MemoryRecord", "memory_csv", "read_memory_csv"]
