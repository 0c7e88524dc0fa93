"""Every environment variable is declared once, read through the declaration, and documented
by the table generated from it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envsetup import settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "envsetup").rglob("*.py")), ROOT / "noxfile.py"]
DECLARATION = ROOT / "envsetup" / "settings.py"
TABLE = re.compile(
    r"<!-- settings table: generated, do not edit -->\n(.*?)<!-- end of settings table -->",
    re.DOTALL,
)
#: A read of a variable by literal name, bypassing the declaration.
DIRECT_READ = re.compile(
    r"""(?:environ|env)(?:\.get\(|\[)\s*["']((?:ENVSETUP|UV|CONDA|LTT|PIP|PYTEST)_\w+)"""
)


def test_docs_table_is_the_generated_one() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    found = TABLE.search(docs)
    assert found is not None, "docs/cli.md lost its generated settings table"
    assert found[1] == settings.markdown(), "regenerate it: python -m envsetup.settings --markdown"


def test_module_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envsetup.settings", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == settings.markdown()
    assert settings.main([]) == 2


def test_every_envsetup_variable_named_in_the_code_is_declared() -> None:
    named: set[str] = set()
    for path in SOURCES:
        if path != DECLARATION:
            named |= set(re.findall(r"\bENVSETUP_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    # ENVSETUP_ prefix spelled alone ("a bad ENVSETUP_* value") is no variable
    undeclared = sorted(name for name in named if name not in {s.name for s in settings.SETTINGS})
    assert undeclared == []


def test_no_module_reads_a_variable_around_the_declaration() -> None:
    bypasses = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in SOURCES
        if path != DECLARATION
        for name in DIRECT_READ.findall(path.read_text())
    ]
    assert bypasses == []


def test_names_are_unique_and_rows_complete() -> None:
    names = [entry.name for entry in settings.SETTINGS]
    assert len(names) == len(set(names))
    for entry in settings.SETTINGS:
        assert entry.value and entry.meaning and entry.read_by, entry.name
        assert "|" not in entry.value + entry.meaning + entry.read_by, entry.name


def test_overrides_read_only_declared_override_variables() -> None:
    from envsetup.detect.overrides import OVERRIDES

    for variables in OVERRIDES.values():
        for name in variables:
            assert settings.setting(name).parser == "override"


def test_an_undeclared_name_is_refused() -> None:
    with pytest.raises(LookupError, match="ENVSETUP_NOPE is not declared"):
        settings.get("ENVSETUP_NOPE", {})


def test_get_keeps_an_empty_value_apart_from_unset() -> None:
    assert settings.get("ENVSETUP_CACHE_DIR", {}) is None
    assert settings.get("ENVSETUP_CACHE_DIR", {"ENVSETUP_CACHE_DIR": ""}) == ""


@pytest.mark.parametrize(
    ("raw", "on"),
    [("1", True), ("true", True), (" TRUE ", True), ("0", False), ("yes", False), ("", False)],
)
def test_flag(raw: str, on: bool) -> None:
    environ = {"ENVSETUP_ALLOW_INSECURE_INDEX": raw}
    assert settings.flag("ENVSETUP_ALLOW_INSECURE_INDEX", environ) is on
    assert settings.flag("ENVSETUP_ALLOW_INSECURE_INDEX", {}) is False


def test_import_is_cheap() -> None:
    """Only the declaration itself: no other envsetup module, no typing, no dataclasses."""
    code = (
        "import sys; before = set(sys.modules); import envsetup.settings; "
        "print(sorted(set(sys.modules) - before))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    added = ast.literal_eval(result.stdout)
    assert [name for name in added if name.startswith("envsetup")] == [
        "envsetup",
        "envsetup.settings",
    ]
    assert not {"typing", "dataclasses"} & set(added)
