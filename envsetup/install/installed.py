"""Which torch-family builds the target environment already has, read from package metadata.

Importing torch to ask would take seconds, can crash on a broken install, and initialises CUDA;
the distribution metadata says the same thing (`2.5.1+cu121`) in milliseconds. For another
interpreter a stdlib-only script runs there and prints JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

from envsetup.errors import EnvsetupError, UsageError
from envsetup.install.interpreter import PYTHON_TAG, reported_json, run_script
from envsetup.model.plan import TORCH_FAMILY

__all__ = ["installed_versions", "interpreter_facts"]

#: Marks the answer in the output: a sitecustomize or .pth hook may print too.
_MARKER = "ENVSETUP-FACTS-JSON:"

_SCRIPT = f"""\
import json, sys, sysconfig
from importlib import metadata
found = {{}}
for name in sys.argv[1:]:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print("{_MARKER}" + json.dumps({{"python": {PYTHON_TAG}, "installed": found}}), flush=True)
"""


def installed_versions(python: str | None = None, *, timeout: float = 30.0) -> dict[str, str]:
    """{dist name: version} for the torch family in `python` (None: this interpreter)."""
    if python is None:
        return _scan(sys.path)
    return interpreter_facts(python, timeout=timeout)[1]


def _scan(path: list[str]) -> dict[str, str]:
    """Read versions from `<name>-<version>.dist-info` directory names, first on sys.path wins.

    The names carry the version (wheel spec), so this skips importing importlib.metadata and
    its dependencies, which on a large environment cost as much as the whole plan.
    """
    found: dict[str, str] = {}
    for entry in path:
        try:
            names = [item.name for item in Path(entry or ".").iterdir()]
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            dist, _, version = stem.partition("-")
            if dot and suffix in ("dist-info", "egg-info") and dist.lower() in TORCH_FAMILY:
                found.setdefault(dist.lower(), version.split("-")[0])
    return found


def interpreter_facts(python: str, *, timeout: float = 30.0) -> tuple[str, dict[str, str]]:
    """("3.11" or "3.13t", installed torch-family versions) of another interpreter."""
    not_found = UsageError(  # a path the user typed: bad input, exit 2
        f"interpreter {python!r} was not found",
        hint="pass the path of the target environment's python",
    )
    argv = [python, "-I", "-c", _SCRIPT, *TORCH_FAMILY]
    result = run_script(argv, timeout=timeout, not_found=not_found)
    if result.returncode != 0:
        raise EnvsetupError(
            f"{python!r} could not list its packages (exit {result.returncode}): "
            f"{result.stderr.strip()[-300:]}",
            hint="check that it is a Python ≥ 3.8 interpreter",
        )
    data = reported_json(result.stdout, _MARKER)
    try:
        found = {str(name): str(version) for name, version in data["installed"].items()}
    except (KeyError, TypeError, AttributeError):
        shown = result.stdout[-300:]
        raise EnvsetupError(f"{python!r} printed no package list: {shown!r}") from None
    return str(data["python"]), found
