"""Hyperparameter search per strategy (`ftlab tune`): search spaces, studies, workers, and
the final runs of each best setting.

Searching needs Optuna (`pip install 'ftlab[tune]'`); search spaces do not, so
`ftlab strategies` works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftlab.errors import ConfigError
from ftlab.tune.space import check_key, describe, overrides_for, strategy_space

if TYPE_CHECKING:
    from ftlab.suite import SuiteResult


def run_tune(path: str | Path, overrides: Sequence[str] = (), report: bool = True
             ) -> SuiteResult:
    """Tune each dataset x strategy of a suite file, train each best setting with several
    seeds, and write the report (`ftlab tune SUITE.yaml`)."""
    _require_optuna()
    from ftlab.tune.run import run_tune as run

    return run(path, overrides, report)


def run_worker(path: str | Path, overrides: Sequence[str], index: int,
               threads: int | None = None) -> None:
    """Join a running search as one more worker (`ftlab tune SUITE.yaml --worker N`)."""
    _require_optuna()
    from ftlab.tune.run import run_worker as run

    run(path, overrides, index, threads)


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("ftlab tune needs Optuna, which is not installed; pip install "
                          "'ftlab[tune]'") from None


__all__ = ["check_key", "describe", "overrides_for", "run_tune", "run_worker", "strategy_space"]
