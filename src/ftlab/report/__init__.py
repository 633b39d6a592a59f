"""Curves and reports, read from run folders only (this package never imports training)."""

from ftlab.report.build import build_report
from ftlab.report.plots import plot_runs

__all__ = ["build_report", "plot_runs"]
