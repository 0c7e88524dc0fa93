"""Which environment `plan`, `install` and `verify` act on: the one the user is working in.

In order: `--python`, the active virtual environment (`VIRTUAL_ENV`), the active conda
environment (`CONDA_PREFIX`), else the interpreter envsetup runs in. Conda's base environment
counts only when envsetup itself runs there: `conda init` activates base in every shell, so
base being active says nothing about where the user wants torch. envsetup's own environment
is never a target when it is a pipx or `uv tool` environment: torch installed there would be
invisible to the user's code, and the next `pipx upgrade` would drop it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envsetup import settings
from envsetup.errors import UsageError

__all__ = [
    "Target",
    "environment_python",
    "find_target",
    "scripts_dir",
    "tool_environment",
    "venv_python",
]

#: Folders pipx and `uv tool` create their environments in, as path fragments.
_TOOL_DIRS = (("pipx", "venvs"), ("uv", "tools"))
#: Files pipx and `uv tool` leave in the environments they manage.
_TOOL_FILES = ("uv-receipt.toml", "pipx_metadata.json")

PICK_HINT = (
    "activate the environment to use (`source .venv/bin/activate`, `conda activate NAME`) "
    "or pass --python PATH/TO/ENV/bin/python; `envsetup venv .venv` makes a new one"
)


@dataclass(frozen=True)
class Target:
    """The interpreter to read, change or check, and why it was chosen (shown to the user)."""

    python: str  # an interpreter path, or a version such as "3.11" (plan only)
    source: str  # "--python", "VIRTUAL_ENV", "CONDA_PREFIX", "envsetup's own environment"

    @property
    def is_self(self) -> bool:
        """Whether the target is this interpreter (its packages can be read without a process).
        A venv's python links to its base interpreter, so the folder must match too."""
        mine, theirs = Path(sys.executable).absolute(), Path(self.python).absolute()
        try:
            return mine.parent == theirs.parent and mine.resolve() == theirs.resolve()
        except OSError:
            return False

    @property
    def probe(self) -> str | None:
        """What `machine_from_args` reads the target from: None for this interpreter."""
        return None if self.is_self else self.python

    def to_json(self) -> dict[str, str]:
        return {"python": self.python, "source": self.source}

    def describe(self) -> str:
        return f"{self.python} ({self.source})"


def scripts_dir(path: Path) -> Path:
    """Where a venv keeps python and the activate scripts: Scripts\\ on Windows, bin/ elsewhere."""
    return path / ("Scripts" if os.name == "nt" else "bin")


def venv_python(path: Path) -> Path:
    return scripts_dir(path) / ("python.exe" if os.name == "nt" else "python")


def environment_python(prefix: str | Path) -> Path:
    """The interpreter of the environment at `prefix`: a venv's, else (conda on Windows) the
    python.exe at its root."""
    root = Path(prefix)
    python = venv_python(root)
    if os.name == "nt" and not python.exists():
        return root / "python.exe"
    return python


def tool_environment(prefix: str | Path) -> str | None:
    """Why the environment at `prefix` is a pipx/uv-tool one, or None when it is not."""
    root = Path(prefix)
    parts = [part.lower() for part in root.parts]
    for first, second in _TOOL_DIRS:
        if any(parts[i : i + 2] == [first, second] for i in range(len(parts) - 1)):
            return f"it lies under a {first}/{second} folder"
    for name in _TOOL_FILES:
        if (root / name).exists():
            return f"it holds {name}"
    lib = root / ("Lib" if os.name == "nt" else "lib")
    if any(lib.glob("site-packages/pipx_shared.pth")) or any(
        lib.glob("python*/site-packages/pipx_shared.pth")
    ):
        return "it holds pipx_shared.pth"
    return None


def _conda_target(environ: Mapping[str, str]) -> str | None:
    prefix = settings.get("CONDA_PREFIX", environ)
    if not prefix:
        return None
    base = (
        settings.get("CONDA_DEFAULT_ENV", environ) == "base" or (Path(prefix) / "condabin").is_dir()
    )
    if base and Path(prefix).resolve() != Path(sys.prefix).resolve():
        return None
    return prefix


def find_target(
    python: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    allow_version: bool = False,
) -> Target:
    """The environment to act on; a UsageError (exit 2) when the only candidate is envsetup's
    own pipx/uv-tool environment, naming how to pick one. With `allow_version` (planning, which
    changes nothing) `--python` may be a version, and instead of refusing, the plan is for the
    Python version envsetup runs on, with nothing installed."""
    environ = os.environ if environ is None else environ
    if python is not None:
        if not allow_version and not _looks_like_path(python):
            raise UsageError(
                f"--python {python!r} is not an interpreter path",
                hint="pass the environment's interpreter, e.g. .venv/bin/python",
            )
        return Target(python, "--python")
    for variable, prefix in (
        ("VIRTUAL_ENV", settings.get("VIRTUAL_ENV", environ)),
        ("CONDA_PREFIX", _conda_target(environ)),
    ):
        if prefix:
            interpreter = environment_python(prefix)
            if not interpreter.exists():
                raise UsageError(
                    f"{variable} is {prefix!r}, but {interpreter} does not exist",
                    hint="reactivate the environment, or pass --python PATH",
                )
            return Target(str(interpreter), variable)
    why = tool_environment(sys.prefix)
    if why is not None and allow_version:
        from envsetup.detect.host import python_tag

        own = f"no environment is active; envsetup's own is a tool environment: {why}"
        return Target(python_tag(), own)
    if why is not None:
        raise UsageError(
            f"no environment is active, and envsetup's own ({sys.prefix}) is a tool "
            f"environment ({why}): torch installed there would not be seen by your code",
            hint=PICK_HINT,
        )
    return Target(sys.executable, "envsetup's own environment")


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or Path(value).suffix == ".exe" or "python" in value
