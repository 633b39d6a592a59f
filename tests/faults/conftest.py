"""The fault-injection and hostile-input suite, and the RELIABILITY.md it writes.

Every test here records what it injected and what came of it through the `reliability`
fixture. When the whole folder ran and passed, the session writes RELIABILITY.md at the
repository root from those records, so the table always states what the last full run of
these tests observed, never what someone typed.
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REPORT = REPO / "RELIABILITY.md"
SEED = int(os.environ.get("FTLAB_FAULT_SEED", time.time_ns() % 2**31))


@dataclass
class Records:
    faults: list[tuple[str, str, str, str]] = field(default_factory=list)
    inputs: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    collected: int = 0
    passed: int = 0


RECORDS = Records()


class Reliability:
    """What one test injected and observed."""

    def fault(self, fault: str, where: str, outcome: str, verified: str) -> None:
        RECORDS.faults.append((fault, where, outcome, verified))

    def inputs(self, category: str, outcome: str, count: int = 1) -> None:
        RECORDS.inputs[(category, outcome)] += count


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Path:
    """The uninterrupted run every fault test must end up equal to."""
    from conftest import tiny_overrides

    import ftlab
    from faults.runs import RUN

    root = tmp_path_factory.mktemp("clean")
    ftlab.train(None, overrides=tiny_overrides(root, **RUN, **{"train.run_name": "clean"}))
    return root / "clean"


@pytest.fixture(scope="session")
def reliability() -> Reliability:
    return Reliability()


@pytest.fixture
def fault_rng(request) -> random.Random:
    """Random injection points, reproducible: FTLAB_FAULT_SEED=<seed> repeats a session."""
    return random.Random(f"{SEED}:{request.node.nodeid}")


def pytest_collection_modifyitems(session, config, items) -> None:
    RECORDS.collected = sum(1 for item in items if _ours(item.nodeid))


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" and report.passed and _ours(report.nodeid):
        RECORDS.passed += 1


def _ours(nodeid: str) -> bool:
    return nodeid.startswith("tests/faults/")


def pytest_sessionfinish(session, exitstatus) -> None:
    if RECORDS.collected and RECORDS.passed == RECORDS.collected:
        REPORT.write_text(render(RECORDS), encoding="utf-8")


def render(records: Records) -> str:
    lines = [
        "# Reliability", "",
        "Written by the test suite (`tests/faults/`, part of `make test`) whenever all of its "
        f"{records.collected} tests pass; do not edit by hand. Injection points are drawn at "
        f"random each session (this one: `FTLAB_FAULT_SEED={SEED}` repeats it).", "",
        "## Faults injected", "",
        "| fault | where | outcome | nothing lost: verified by |", "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in records.faults]
    lines += ["", "## Hostile input", "", "| category | inputs tried | outcome |",
              "|---|---|---|"]
    lines += [f"| {category} | {count} | {outcome} |"
              for (category, outcome), count in sorted(records.inputs.items())]
    return "\n".join(lines) + "\n"
