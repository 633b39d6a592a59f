"""Skips for the tests that walk every strategy: one built on an optional extra needs it."""

from __future__ import annotations

import importlib.util

import pytest

from ftlab.strategies import strategy_class
from ftlab.strategies.peft_base import PEFT_EXTRA, PeftStrategy


def needs_extra(strategy: str) -> None:
    """Skip, with the install line, where `strategy` needs peft and peft is missing."""
    if issubclass(strategy_class(strategy), PeftStrategy) and \
            importlib.util.find_spec("peft") is None:
        pytest.skip(f"strategy {strategy} needs peft, which is not installed ({PEFT_EXTRA})")
