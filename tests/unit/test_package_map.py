"""docs/development.md's package map names every module of envsetup/, so it matches the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _map_block() -> str:
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    found = re.search(r"```\n(envsetup/\n.*?)```", text, re.DOTALL)
    assert found is not None, "docs/development.md lost its package map"
    return found[1]


def test_every_module_and_package_is_in_the_map() -> None:
    block = _map_block()
    named = set(re.findall(r"[\w.]+\.py|\w+/", block))
    package = ROOT / "envsetup"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts and path.name != "__init__.py" and path.name not in named
    ]
    missing += [
        f"{folder.relative_to(package)}/"
        for folder in sorted(package.rglob("*"))
        if folder.is_dir() and folder.name != "__pycache__" and f"{folder.name}/" not in named
    ]
    assert not missing, f"modules missing from docs/development.md's map: {missing}"


def test_the_map_names_no_module_that_is_gone() -> None:
    block = _map_block().split("matrices/              compatibility data")[0]
    existing = {path.name for path in (ROOT / "envsetup").rglob("*.py")}
    stale = sorted(set(re.findall(r"\b[\w]+\.py\b", block)) - existing)
    assert not stale, f"docs/development.md's map names modules that do not exist: {stale}"
