"""The paths users write keep working after the re-layout: nox helpers and entry points."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import envsetup.nox
from envsetup.integrations import nox as nox_helpers

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_nox_helpers_keep_their_documented_path() -> None:
    for name in envsetup.nox.__all__:
        assert getattr(envsetup.nox, name) is getattr(nox_helpers, name)


def test_every_declared_entry_point_imports() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    targets = [*project["scripts"].values()]
    for group in project["entry-points"].values():
        targets.extend(group.values())
    for target in targets:
        module, _, attribute = target.partition(":")
        loaded = importlib.import_module(module)
        if attribute:
            assert callable(getattr(loaded, attribute)), target
