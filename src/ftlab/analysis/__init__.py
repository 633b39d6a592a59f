"""How networks differ: per-layer parameter comparison and block-wise representation
similarity (`ftlab diff`)."""

from ftlab.analysis.cka import cka
from ftlab.analysis.diff import DiffResult, diff

__all__ = ["DiffResult", "cka", "diff"]
