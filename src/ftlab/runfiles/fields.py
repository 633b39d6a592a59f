"""A file's values into a dataclass: each field present (or defaulted) and of its type.

The run files are read back by other processes, other machines and other ftlab versions, so
a damaged or foreign file must fail in one line naming the file and the key, not later in a
report with a KeyError. Keys this code does not know are ignored: a newer ftlab of the same
`format_version` may add keys, which by the rule of `ftlab.runfiles.versions` older readers
can skip.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftlab.errors import FtlabError, RunDirError
from ftlab.runfiles.versions import KEY


def field_values(cls: type, values: Mapping[str, Any], what: str, source: object,
                 error: type[FtlabError]) -> dict[str, Any]:
    """The keyword arguments of dataclass `cls` from `values` (`format_version` aside).

    Raises:
        error: a field without a default is missing, or a value does not fit its annotation.
    """
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name == KEY:
            continue
        if field.name not in values:
            if field.default is dataclasses.MISSING and \
                    field.default_factory is dataclasses.MISSING:
                raise error(f"{source} is not a complete {what}: it has no '{field.name}' (a "
                            "damaged file, or not ftlab's)")
            continue
        value = values[field.name]
        if not fits(value, hints[field.name]):
            raise error(f"{source} is not a readable {what}: its '{field.name}' is "
                        f"{type(value).__name__}, not {describe(hints[field.name])} (a damaged "
                        "file, or not ftlab's)")
        kwargs[field.name] = value
    return kwargs


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` (as JSON, CSV or torch.load gives it) fits the annotation `hint`; the
    elements of lists and dicts are not checked, a nested dataclass is checked as a mapping."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if dataclasses.is_dataclass(hint):
        return isinstance(value, Mapping)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(typing.get_origin(hint) or hint, "__name__", str(hint))


def read_json(path: Path, fix: str) -> Any:
    """A JSON file's value; one line naming the file and `fix` when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or "not JSON"
        raise RunDirError(f"{path} cannot be read ({reason}); {fix}") from None
