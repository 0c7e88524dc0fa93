"""A Plan turned into installer argv, project snippets, a changed environment or a new venv."""

from __future__ import annotations
