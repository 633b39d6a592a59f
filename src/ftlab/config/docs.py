"""The documentation of config fields: the docstring written under each dataclass field.

Python keeps no attribute docstrings at run time, so they are read from the class's source
(the convention of litgpt's configs, and what `ftlab strategies NAME` prints). A class whose
source cannot be read (defined in an interactive session) has no field docs, not an error.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from typing import Any


def field_docs(schema: type) -> dict[str, str]:
    """Field name -> its docstring (one paragraph, whitespace folded), for every documented
    field of the dataclass `schema`, inherited fields included (a subclass's own docstring
    wins)."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__[:-1]):
        if dataclasses.is_dataclass(cls):
            docs.update(_own_field_docs(cls))
    return docs


def _own_field_docs(schema: type) -> dict[str, str]:
    """The field docstrings written in `schema`'s own class body."""
    try:
        source = textwrap.dedent(inspect.getsource(schema))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    statements = getattr(body, "body", [])
    for node, after in zip(statements, statements[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def field_defaults(schema: type) -> dict[str, Any]:
    """Field name -> default value (None where a field has no default)."""
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
        else:
            defaults[f.name] = None
    return defaults


def field_types(schema: type) -> dict[str, str]:
    """Field name -> its annotation as written (`int`, `Optional[str]`, ...)."""
    return {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            for f in dataclasses.fields(schema)}
