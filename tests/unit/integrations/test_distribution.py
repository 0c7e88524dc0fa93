"""Where this envsetup came from, as the requirement nox sessions and tox environments install."""

from __future__ import annotations

from pathlib import Path

from envsetup.integrations.distribution import _checkout_requirement

ROOT = Path(__file__).resolve().parents[3]


def test_a_checkout_on_sys_path_is_named_by_its_root_folder() -> None:
    # envsetup/integrations/distribution.py: the root is two folders up; one up (envsetup/) has
    # no pyproject.toml and was refused after the package was re-laid out by stage
    assert _checkout_requirement() == f"envsetup @ {ROOT.as_uri()}"
