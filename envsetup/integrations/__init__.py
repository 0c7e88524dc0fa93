"""envsetup inside other tools: the pytest plugin, nox and tox helpers, CI matrices."""

from __future__ import annotations
