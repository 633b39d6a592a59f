"""The package structure holds: layers, no cycles, no private names across packages.

The layer and cycle contracts live in pyproject.toml ([tool.importlinter]) and are checked
by import-linter, the same check `lint-imports` runs by hand.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "ftlab"


LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")


def test_import_contracts_hold():
    # In a process of its own: lint_imports configures logging with dictConfig, which
    # disables every logger that exists, ftlab's included, for the rest of the process.
    done = subprocess.run([sys.executable, "-c", LINT, str(REPO / "pyproject.toml")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _private_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """`from ftlab.x.y import _name` where the importer (`path` below `root`) is not inside
    ftlab.x."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("ftlab."):
            continue
        if _package_of(node.module) == _package_of(module):
            continue
        found += [f"{module}:{node.lineno} imports {alias.name} from {node.module}"
                  for alias in node.names
                  if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_package_imports_another_packages_private_names():
    offences = [line for path in sorted(PACKAGE.rglob("*.py")) for line in _private_imports(path)]
    assert not offences, "\n".join(offences)


def test_the_private_name_check_finds_offences(tmp_path):
    """The check above can fail: a file that reaches into another package is reported."""
    offender = tmp_path / "ftlab" / "suite" / "offender.py"
    offender.parent.mkdir(parents=True)
    offender.write_text("from ftlab.training.api import _process_group\n"
                        "from ftlab.suite.state import _private_but_same_package\n",
                        encoding="utf-8")
    assert _private_imports(offender, tmp_path) == [
        "ftlab.suite.offender:1 imports _process_group from ftlab.training.api"]
