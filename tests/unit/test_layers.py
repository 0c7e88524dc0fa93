"""The package's layers, checked from its source: a module imports only what its stage may.

docs/development.md: a lower stage never imports a higher one; integrations do not import each
other; CLI verbs share helpers through `cli/_*.py`, never another verb's module; only the CLI
(and pytest's own option parser in the plugin) reads argparse namespaces.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "envsetup"
VERBS = {path.stem for path in (PACKAGE / "cli").glob("[!_]*.py")}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_cli_verb_imports_no_other_verb(verb: str) -> None:
    imported = _imports(PACKAGE / "cli" / f"{verb}.py")
    others = {f"envsetup.cli.{other}" for other in VERBS - {verb}}
    assert not imported & others


@pytest.mark.parametrize(("one", "other"), [("tox_plugin", "nox"), ("nox", "tox_plugin")])
def test_the_nox_and_tox_integrations_share_only_lower_modules(one: str, other: str) -> None:
    assert f"envsetup.integrations.{other}" not in _imports(PACKAGE / "integrations" / f"{one}.py")


def test_only_the_cli_and_pytests_option_hook_use_argparse() -> None:
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "argparse" in _imports(path) and path.parent.name != "cli"
    }
    assert users <= {"integrations/pytest_plugin.py"}


def test_no_stage_below_the_integrations_imports_them() -> None:
    lower = ("model", "detect", "matrices", "resolve", "install", "verify")
    leaks = {
        path.relative_to(PACKAGE).as_posix(): sorted(
            name
            for name in _imports(path)
            if name.startswith(("envsetup.integrations", "envsetup.cli"))
        )
        for stage in lower
        for path in (PACKAGE / stage).rglob("*.py")
    }
    assert {path: names for path, names in leaks.items() if names} == {}
