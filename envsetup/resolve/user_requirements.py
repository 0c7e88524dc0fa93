"""The user's own requirements: `--requirements FILE` (pip syntax) and `--project DIR[groups]`.

Only the torch family decides the plan: each torch/torchvision/torchaudio specifier found is a
constraint the chosen build must satisfy, remembered with the line it came from so the plan can
say which line constrained it. Everything else is installed afterwards, from PyPI, by the
follow-up command (`pip install -r FILE`), which finds the torch family already satisfied.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from envsetup.errors import UsageError
from envsetup.model.plan import TORCH_FAMILY

__all__ = ["Constraint", "UserRequirements", "read_user_requirements"]

#: pip options that name another file, relative to the file that names them.
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
#: Source options: the torch family's index is envsetup's to choose; the rest is the user's.
_SOURCES = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index")
_PROJECT = re.compile(r"^(?P<dir>.*?)(?:\[(?P<groups>[^\]]*)\])?$")


@dataclass(frozen=True)
class Constraint:
    """One torch-family specifier from the user's files: "torch>=2.4,<2.6 (requirements.txt:3)"."""

    name: str
    specifier: str
    origin: str

    def __str__(self) -> str:
        return f"{self.name}{self.specifier} ({self.origin})"


@dataclass(frozen=True)
class UserRequirements:
    constraints: tuple[Constraint, ...] = ()
    #: install arguments for the rest ("-r", "requirements.txt"), one tuple per command
    rest: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = ()


def read_user_requirements(files: list[str], projects: list[str]) -> UserRequirements:
    constraints: list[Constraint] = []
    notes: list[str] = []
    rest: list[tuple[str, ...]] = []
    for name in files:
        _read_file(Path(name), constraints, notes, seen=set())
        rest.append(("-r", name))
    for spec in projects:
        match = _PROJECT.fullmatch(spec.strip())
        assert match is not None
        directory = Path(match["dir"] or ".")
        groups = [g.strip() for g in (match["groups"] or "").split(",") if g.strip()]
        chosen = _read_project(directory, groups, constraints)
        rest.append(("-e", f"{directory}[{','.join(chosen)}]" if chosen else str(directory)))
    return UserRequirements(tuple(constraints), tuple(rest), tuple(notes))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments dropped and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, (pending + line).strip()))
        pending = ""
    if pending.strip():
        out.append((start, pending.strip()))
    return [(number, line) for number, line in out if line]


def _read_file(path: Path, out: list[Constraint], notes: list[str], seen: set[Path]) -> None:
    try:
        resolved = path.resolve()
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"--requirements {str(path)!r}: cannot read it ({error.strerror or error})",
            hint="pass a pip requirements file (one requirement per line)",
        ) from None
    if resolved in seen:
        return
    seen.add(resolved)
    for number, line in _logical_lines(text):
        origin = f"{path.name}:{number}"
        if line.startswith("-"):
            parts = re.split(r"[=\s]+", line, maxsplit=1)
            option, value = parts[0], parts[1].strip() if len(parts) > 1 else ""
            if option in _INCLUDES and value:
                _read_file(path.parent / value, out, notes, seen)
            elif option in _SOURCES:
                notes.append(
                    f"{origin}: {option} ignored for the torch family, which comes from the "
                    "PyTorch index envsetup chooses (the rest still uses it)"
                )
            continue
        _requirement(line, origin, out)


def _requirement(line: str, origin: str, out: list[Constraint]) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return  # a URL, a path or an editable: not a torch-family specifier
    name = re.sub(r"[-_.]+", "-", requirement.name).lower()
    if name not in TORCH_FAMILY:
        return
    if requirement.marker is not None and not requirement.marker.evaluate():
        return
    out.append(Constraint(name, str(requirement.specifier), origin))


def _read_project(directory: Path, groups: list[str], out: list[Constraint]) -> list[str]:
    """Torch-family specifiers of `[project]` dependencies and the chosen optional groups
    (all of them when none is named); returns the groups read."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    path = directory / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(
            f"--project {str(directory)!r}: cannot read {path} ({error})",
            hint="point --project at a folder holding a pyproject.toml with a [project] table",
        ) from None
    optional = project.get("optional-dependencies", {})
    unknown = [group for group in groups if group not in optional]
    if unknown:
        raise UsageError(
            f"--project {str(directory)!r}: no optional-dependencies group "
            + ", ".join(map(repr, unknown)),
            hint="groups in that pyproject.toml: " + (", ".join(optional) or "none"),
        )
    chosen = groups or list(optional)
    for index, line in enumerate(project.get("dependencies", [])):
        _requirement(line, f"pyproject.toml dependencies[{index}]", out)
    for group in chosen:
        for index, line in enumerate(optional[group]):
            _requirement(line, f"pyproject.toml [{group}][{index}]", out)
    return chosen
