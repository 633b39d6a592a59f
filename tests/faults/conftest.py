"""The fault-injection and hostile-input suite, and the records behind RELIABILITY.md.

Every test here records what it injected and what came of it through the `reliability`
fixture; faults/records.py explains how the records become RELIABILITY.md.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from faults.records import SEED_ENV, Records, save

RECORDS = Records()


class Reliability:
    """What one test injected and observed."""

    def fault(self, fault: str, where: str, outcome: str, verified: str) -> None:
        RECORDS.faults.append([fault, where, outcome, verified])

    def inputs(self, category: str, outcome: str, count: int = 1) -> None:
        RECORDS.add_input(category, outcome, count)


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
    """Random injection points, reproducible: FTLAB_FAULT_SEED=<seed> repeats a session
    (tests/conftest.py draws one per session and hands it to every worker)."""
    return random.Random(f"{os.environ.get(SEED_ENV, '0')}:{request.node.nodeid.split('@')[0]}")


def pytest_collection_modifyitems(session, config, items) -> None:
    ours = [item for item in items if _ours(item.nodeid)]
    files = {Path(str(item.fspath)).name for item in ours}
    RECORDS.collected = len(ours)
    RECORDS.whole = files == {path.name for path in Path(__file__).parent.glob("test_*.py")}


def pytest_deselected(items) -> None:
    if any(_ours(item.nodeid) for item in items):
        RECORDS.whole = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Counted where the test runs (an xdist controller only relays reports)."""
    report = yield
    if report.when == "call" and report.passed and _ours(item.nodeid):
        RECORDS.passed += 1
    return report


def _ours(nodeid: str) -> bool:
    return nodeid.startswith("tests/faults/")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    """Hand this process's records to the main process (tests/conftest.py writes the file)."""
    save(RECORDS)
