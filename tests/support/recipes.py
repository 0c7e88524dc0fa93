"""The README's recipes, found by the marker before each fenced block: `<!-- recipe: NAME -->`.

Markers are looked up in README.md and docs/*.md, so a recipe may move between them; the tests
run the text between the fences exactly as printed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_RECIPE = re.compile(
    r"<!-- recipe: (?P<name>[\w.-]+) -->\s*\n```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.DOTALL
)


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def recipes() -> dict[str, str]:
    """Every marked recipe, by name; a name used twice is an error (which one would run?)."""
    found: dict[str, str] = {}
    for path in _documents():
        if not path.is_file():
            continue
        for match in _RECIPE.finditer(path.read_text(encoding="utf-8")):
            name = match["name"]
            assert name not in found, f"recipe {name!r} is marked twice ({path})"
            found[name] = match["body"] + "\n"
    return found


def recipe(name: str) -> str:
    found = recipes()
    assert name in found, f"no `<!-- recipe: {name} -->` block in README.md or docs/*.md"
    return found[name]
