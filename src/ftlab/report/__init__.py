"""Curves and reports, read from run folders only (this package never imports training)."""

from pathlib import Path

from ftlab.report.build import build_report
from ftlab.report.collect import groups, load_records
from ftlab.report.compare import answers
from ftlab.report.plots import plot_runs


def recommendations(root: Path) -> dict[str, list[str]]:
    """Which strategy, per dataset of a suite folder: the report's recommendation lines."""
    from ftlab.runfiles import read_report_settings

    return answers(groups(load_records(root)), read_report_settings(root).memory_budget)


__all__ = ["build_report", "plot_runs", "recommendations"]
