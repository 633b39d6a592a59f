"""The argparse pieces every `ftlab` command shares: one-line usage errors, subcommand
registration, integer types, telling `key=value` overrides from paths, and bounding YAML
inputs before torch is imported."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

Command = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other ftlab error."""

    def error(self, message: str) -> NoReturn:
        print(f"ftlab: error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


def check_yaml_first(paths: dict[str, str | None], overrides: list[str]) -> None:
    """Bound the YAML inputs before importing torch: a hostile file (an alias bomb) is refused
    in a fraction of a second and a few MiB, not after seconds of start-up. Loading them
    later checks the same bounds again (`ftlab.yamlfile`), so the library is safe alone."""
    from ftlab.yamlfile import check_yaml, read_yaml

    for what, path in paths.items():
        if path and Path(path).is_file():
            read_yaml(path, what)
    for item in overrides:
        key, _, value = item.partition("=")
        check_yaml(value, f"override {key}")


def add_command(sub: argparse._SubParsersAction, name: str, handler: Command,
                help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def int_list(text: str) -> list[int]:
    return [int_in(1, None)(part) for part in text.split(",")]


def int_in(low: int, high: int | None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when high is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} must be at most {high:,}")
        return value

    return parse


def is_override(item: str) -> bool:
    """`section.key=value` (a dotted key); anything else is a path."""
    key, equals, _ = item.partition("=")
    return bool(equals) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", key) is not None
