"""Create a fresh virtual environment holding a Plan, all or nothing.

A venv cannot be built elsewhere and renamed into place: `activate` and every console script
(pip, torchrun) carry its absolute path. So the new environment is built AT the target path,
and safety comes from bookkeeping instead: an existing environment (only with --force) is first
renamed aside in the same directory (atomic, nothing copied), and on any failure, Ctrl-C or
SIGTERM included, what we created is removed and the old environment renamed back. The old one
is deleted only after the new one has been verified.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from envsetup.errors import EnvsetupError
from envsetup.install import (
    StepFailed,
    expectation,
    find_uv,
    installer_argv,
    run_step,
    signals_handled,
)
from envsetup.machine import Machine
from envsetup.plan import Plan
from envsetup.verify import VerifyReport, verify

__all__ = ["VenvResult", "activation_line", "create_venv", "venv_python"]


@dataclass(frozen=True)
class VenvResult:
    path: Path
    python: Path
    report: VerifyReport


def _scripts(path: Path) -> Path:
    """Where venv puts python and the activate scripts: Scripts\\ on Windows, bin/ elsewhere."""
    return path / ("Scripts" if os.name == "nt" else "bin")


def venv_python(path: Path) -> Path:
    return _scripts(path) / ("python.exe" if os.name == "nt" else "python")


def activation_line(path: Path) -> str:
    """What to type; quoted, since a path may hold spaces or shell metacharacters."""
    activate = _scripts(path) / "activate"
    return str(activate) if os.name == "nt" else f". {shlex.quote(str(activate))}"


def check_target(path: Path, *, force: bool) -> None:
    """Refuse to touch anything that is not ours to replace."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise EnvsetupError(
            f"{path} exists and is not a directory",
            hint="choose another path for the environment",
        )
    if not path.exists() or not any(path.iterdir()):
        return
    if not force:
        raise EnvsetupError(
            f"{path} exists and is not empty",
            hint="choose another path, or pass --force to replace it (the old environment is "
            "kept until the new one is verified, and put back if anything fails)",
        )
    if not (path / "pyvenv.cfg").is_file():
        raise EnvsetupError(
            f"{path} is not a virtual environment (no pyvenv.cfg); --force only replaces "
            "environments",
            hint="choose another path; envsetup never removes other directories",
        )


class _Rollback:
    """What this run changed on disk, so any failure can undo exactly that."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created_parents: Path | None = None
        self.aside: Path | None = None
        self.was_empty_dir: int | None = None  # mode of an empty directory we replaced

    def prepare(self) -> None:
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        if missing:
            self.created_parents = missing[-1]
            self.path.parent.mkdir(parents=True)
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.was_empty_dir = self.path.stat().st_mode & 0o7777
            self.path.rmdir()
        elif self.path.exists():
            self.aside = self.path.with_name(f".{self.path.name}.envsetup-old-{os.getpid()}")
            self.path.rename(self.aside)

    def undo(self) -> None:
        # Rollback must finish: a second Ctrl-C would leave the disk half-restored.
        with signals_handled(("SIGINT", "SIGTERM", "SIGHUP"), signal.SIG_IGN):
            if self.path.is_dir() and not self.path.is_symlink():
                shutil.rmtree(self.path)
            if self.aside is not None:
                self.aside.rename(self.path)
            if self.was_empty_dir is not None:
                self.path.mkdir(mode=self.was_empty_dir)
            if self.created_parents is not None:
                shutil.rmtree(self.created_parents, ignore_errors=True)

    def commit(self) -> None:
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)


def create_argv(path: Path, *, installer: str, base_python: str) -> list[str]:
    """The command that creates an empty environment (with pip when pip will install into it)."""
    if installer == "uv":
        return [find_uv(), "venv", "--python", base_python, str(path)]
    return [base_python, "-m", "venv", str(path)]


def create_venv(
    path: Path,
    plan: Plan,
    *,
    base_python: str | None = None,
    installer: str = "pip",
    force: bool = False,
    machine: Machine | None = None,
    out: TextIO | None = None,
) -> VenvResult:
    """Create `path` holding `plan`, verified; on any failure leave the disk as it was."""
    path = Path(path).absolute()
    check_target(path, force=force)
    base = base_python or sys.executable
    python = venv_python(path)
    steps = {
        "create": create_argv(path, installer=installer, base_python=base),
        "install": installer_argv(plan, installer=installer, python=str(python)),
    }
    rollback = _Rollback(path)
    step = "prepare"
    try:
        rollback.prepare()
        for step, argv in steps.items():
            run_step(step, argv, out=out)
        step = "verify"
        report = verify(str(python), machine=machine, expect=expectation(plan))
        if not report.ok:
            failed = report.failures
            raise StepFailed(
                "verify",
                f"the new environment does not work: {failed[0].name}: {failed[0].detail}",
                tail=[f"{check.name}: {check.detail}" for check in failed[1:]],
                hint=failed[0].fix,
            )
    except BaseException as error:
        rollback.undo()
        restored = "the old environment is back in place" if rollback.aside else "nothing was left"
        if isinstance(error, EnvsetupError):
            error.message += f"\n  {path}: {restored}"
            raise
        if isinstance(error, KeyboardInterrupt):
            print(
                f"envsetup: interrupted during step '{step}'; {path}: {restored}", file=sys.stderr
            )
            raise
        raise EnvsetupError(
            f"step '{step}' failed: {type(error).__name__}: {error}\n  {path}: {restored}"
        ) from error
    rollback.commit()
    return VenvResult(path, python, report)
