"""What the fault tests observed, kept per process and merged into RELIABILITY.md.

With pytest-xdist the fault tests may run in several worker processes. Each process saves
its records as JSON in one folder that the main process created (its path travels in the
environment), and the main process merges them at the end of the session. The table is
written only when asked for (`make reliability`, which sets WRITE_ENV: a plain `make test`
leaves the checkout as it found it) and only when every fault test was selected, ran and
passed, so it always states what the last full run of these tests observed, never what
someone typed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FOLDER_ENV = "FTLAB_RELIABILITY_DIR"
SEED_ENV = "FTLAB_FAULT_SEED"
WRITE_ENV = "FTLAB_WRITE_RELIABILITY"
"""Set to 1 to have the session write RELIABILITY.md (`make reliability`)."""
REPORT = Path(__file__).resolve().parents[2] / "RELIABILITY.md"


@dataclass
class Records:
    faults: list[list[str]] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)
    """'category<TAB>outcome' -> inputs tried."""
    collected: int = 0
    passed: int = 0
    whole: bool = False
    """Every test file of tests/faults was collected and nothing deselected (-k, -m)."""

    def add_input(self, category: str, outcome: str, count: int) -> None:
        key = f"{category}\t{outcome}"
        self.inputs[key] = self.inputs.get(key, 0) + count


def save(records: Records) -> None:
    folder = os.environ.get(FOLDER_ENV)
    if folder:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        (Path(folder) / f"{name}.json").write_text(json.dumps(asdict(records)))


def merge(folder: Path) -> Records:
    merged = Records()
    for path in sorted(folder.glob("*.json")):
        part = Records(**json.loads(path.read_text()))
        merged.faults += part.faults
        for key, count in part.inputs.items():
            category, outcome = key.split("\t")
            merged.add_input(category, outcome, count)
        if part.collected:  # every worker collects all; an xdist controller collects none
            merged.collected, merged.whole = part.collected, part.whole
        merged.passed += part.passed
    return merged


def write_report(folder: Path) -> bool:
    """Write RELIABILITY.md from the records in `folder` if asked to and every fault test
    passed; whether it was written."""
    records = merge(folder)
    if os.environ.get(WRITE_ENV) != "1":
        return False
    if records.whole and records.collected and records.passed == records.collected:
        REPORT.write_text(render(records, os.environ.get(SEED_ENV, "?")), encoding="utf-8")
        return True
    return False


def render(records: Records, seed: str) -> str:
    lines = [
        "# Reliability", "",
        "Written by `make reliability` (the fault-injection and hostile-input tests of "
        f"`tests/faults/`, which `make test` also runs) when all of its {records.collected} "
        "tests pass; do not edit by hand. Injection points are drawn at random each session "
        f"(this one: `{SEED_ENV}={seed}` repeats it).", "",
        "## Faults injected", "",
        "| fault | where | outcome | nothing lost: verified by |", "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in sorted(records.faults)]
    lines += ["", "## Hostile input", "", "| category | inputs tried | outcome |",
              "|---|---|---|"]
    for key, count in sorted(records.inputs.items()):
        category, outcome = key.split("\t")
        lines.append(f"| {category} | {count} | {outcome} |")
    return "\n".join(lines) + "\n"
