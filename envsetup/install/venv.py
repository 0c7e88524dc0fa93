"""Create a fresh virtual environment holding a Plan, all or nothing, without ever losing the
environment it replaces.

A venv cannot be built elsewhere and renamed into place: `activate` and every console script
(pip, torchrun) carry its absolute path. So the new environment is built AT the target path,
and safety comes from bookkeeping instead:

- one run per target at a time: a lock file next to it (`.envsetup-lock-<tag>`, flock'd, so a
  killed run never leaves it held);
- an existing environment (only with --force) is renamed aside in the same directory, under a
  short name that always fits (`.envsetup-old-<tag>`, the tag a hash of the target's name);
  where it cannot be renamed (a mount point, an unwritable parent) its contents go into
  `PATH/.envsetup-old-<tag>` instead, but only with --replace-in-place;
- an empty directory (`envsetup venv .` inside it) is built in place, never removed;
- on any failure, Ctrl-C or SIGTERM included, the children are stopped as a group, only what
  this run created is removed, and only what this run moved is moved back;
- the old environment is deleted only after the new one has been verified: renamed to
  `.envsetup-trash-<tag>` first, so a deletion cut short leaves a name that says what it is
  (the next run on that target finishes it). An `.envsetup-old-<tag>` found at the start is an
  earlier run's, stopped by force: it is named in an error and never taken for ours.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from envsetup.errors import EnvsetupError, UsageError
from envsetup.install.run import (
    StepFailed,
    expectation,
    find_uv,
    installer_argv,
    run_step,
)
from envsetup.install.target import scripts_dir, venv_python
from envsetup.model.machine import Machine
from envsetup.model.plan import Plan
from envsetup.process import signals_ignored
from envsetup.verify import VerifyReport, verify

__all__ = [
    "VenvResult",
    "activation_line",
    "check_target",
    "create_venv",
    "target_lock",
]

ASIDE = ".envsetup-old-"
TRASH = ".envsetup-trash-"
LOCK = ".envsetup-lock-"

#: Characters that CPython's activate scripts (bash/zsh, csh, fish, activate.bat) put into
#: double-quoted strings unescaped: on an interpreter without the CVE-2024-9287 fix, `$(...)` or
#: a backtick in the path runs as a command each time the environment is activated.
_UNSAFE_IN_ACTIVATE = re.compile(
    r'[$`"%\x00-\x1f\x7f]' if os.name == "nt" else r'[$`"\\\x00-\x1f\x7f]'
)


@dataclass(frozen=True)
class VenvResult:
    path: Path
    python: Path
    report: VerifyReport


def activation_line(path: Path) -> str:
    """What to type; quoted, since a path may hold spaces."""
    activate = scripts_dir(path) / "activate"
    return str(activate) if os.name == "nt" else f". {shlex.quote(str(activate))}"


def _tag(path: Path) -> str:
    """A short name for `path` among its siblings: 10 hex digits of a hash of its name."""
    return hashlib.sha256(os.fsencode(path.name)).hexdigest()[:10]


def check_target(path: Path, *, force: bool) -> None:
    """Refuse to touch anything that is not ours to replace."""
    path = Path(path).absolute()
    unsafe = _UNSAFE_IN_ACTIVATE.search(str(path))
    if unsafe:
        raise UsageError(
            f"{path}: the character {unsafe.group()!r} in an environment's path is run as shell "
            "code by the activate scripts of Pythons without the CVE-2024-9287 fix",
            hint='choose a path without $, `, ", \\ (% on Windows) or control characters',
        )
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


@contextmanager
def target_lock(path: Path) -> Iterator[None]:
    """Hold the lock for `path` (an absolute path whose parent exists) while the block runs; a
    second run on the same target refuses instead of both moving the old environment around."""
    lock = path.with_name(f"{LOCK}{_tag(path)}")
    try:
        fd = _lock_file(lock, path)
    except PermissionError:
        if not path.is_dir():
            raise EnvsetupError(
                f"cannot create {path}: {path.parent} is not writable",
                hint="choose a path in a directory you can write to",
            ) from None
        fd = _lock_directory(path)  # the parent is not ours: lock the environment itself
        lock = path
    try:
        yield
    finally:
        if lock != path:
            lock.unlink(missing_ok=True)  # while still held: the next run makes a new one
        os.close(fd)


def _busy(path: Path, holder: str) -> EnvsetupError:
    return EnvsetupError(
        f"another envsetup run{holder} is working on {path}",
        hint="wait for it to finish; two runs on one environment would undo each other",
    )


if sys.platform == "win32":

    def _lock_file(lock: Path, target: Path) -> int:
        """Without flock: create the file exclusively; a killed run's file must be removed."""
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise _busy(target, f" (or a stopped one: delete {lock})") from None
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _lock_directory(path: Path) -> int:
        raise EnvsetupError(f"cannot lock {path}: {path.parent} is not writable")

else:
    import fcntl

    def _lock_file(lock: Path, target: Path) -> int:
        """flock the file at `lock`, made if need be; retried when the holder unlinked it between
        our open and our flock (the inode we hold must be the one at that name)."""
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                raise _busy(target, f" (pid {holder})" if holder else "") from None
            held = os.fstat(fd)
            try:
                current = lock.lstat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_dev, current.st_ino) == (
                held.st_dev,
                held.st_ino,
            ):
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                return fd
            os.close(fd)

    def _lock_directory(path: Path) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(path, "") from None
        return fd


#: rename() errors that mean "this directory cannot move" rather than "something is wrong".
_CANNOT_MOVE = {
    errno.EBUSY: "it is a mount point",
    errno.EXDEV: "it is a mount point",
    errno.EACCES: "its parent directory is not writable",
    errno.EPERM: "its parent directory does not allow it",
    errno.EROFS: "it is on a read-only file system",
}


def _empty(directory: Path, keep: str = "") -> None:
    """Remove everything in `directory` except the entry named `keep`."""
    for entry in list(directory.iterdir()):
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class _Rollback:
    """What this run changed on disk, so any failure undoes exactly that and nothing more.

    `how` is set only once the change it names has happened: "new" (PATH did not exist),
    "empty" (built inside an empty directory), "moved" (the old environment was renamed to
    `aside`), "in place" (its contents were moved into PATH/`aside`).
    """

    def __init__(self, path: Path, *, in_place: bool) -> None:
        self.path = path
        self.in_place = in_place
        self.created_parents: list[Path] = []
        self.aside = path.with_name(f"{ASIDE}{_tag(path)}")
        self.trash = path.with_name(f"{TRASH}{_tag(path)}")
        self.how: str | None = None

    @property
    def restored(self) -> bool:
        """Whether undo puts an old environment back (else: nothing is left)."""
        return self.how in ("moved", "in place")

    def make_parents(self) -> None:
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        for parent in reversed(missing):
            try:
                parent.mkdir()
            except FileExistsError:
                continue
            self.created_parents.insert(0, parent)

    def prepare(self, out: TextIO) -> None:
        """Make room for the new environment (under the target's lock)."""
        inner = self.path / self.aside.name
        for stale in (self.aside, inner):
            if os.path.lexists(stale):
                raise EnvsetupError(
                    f"{stale} is left from an earlier envsetup run on {self.path} that was "
                    "stopped before it finished: it holds the environment that was at "
                    f"{self.path} before that run",
                    hint=f"if {self.path} works, delete {stale}; otherwise delete {self.path} "
                    f"and rename {stale} back to it; then rerun",
                )
        for trash in (self.trash, self.path / self.trash.name):
            if os.path.lexists(trash):
                print(f"envsetup: removing {trash}, left half-deleted by an earlier run", file=out)
                shutil.rmtree(trash)
        if not self.path.exists():
            self.how = "new"
        elif not any(self.path.iterdir()):
            self.how = "empty"
        else:
            self._move_aside()

    def _move_aside(self) -> None:
        try:
            self.path.rename(self.aside)
        except OSError as error:
            why = _CANNOT_MOVE.get(error.errno or 0)
            if why is None:
                raise EnvsetupError(
                    f"could not move {self.path} aside to {self.aside}: {error.strerror}; "
                    "nothing was changed"
                ) from None
            if not self.in_place:
                raise EnvsetupError(
                    f"cannot replace {self.path} safely: it cannot be renamed ({why}: "
                    f"{error.strerror}); nothing was changed",
                    hint="pass --replace-in-place to build the new environment inside it (its "
                    "contents are kept in a hidden directory there until the new one is "
                    "verified)",
                ) from None
        else:
            self.how = "moved"
            return
        inner = self.path / self.aside.name
        inner.mkdir()
        self.how = "in place"  # from here undo moves back whatever reached `inner`
        for entry in list(self.path.iterdir()):
            if entry.name != inner.name:
                entry.rename(inner / entry.name)

    def undo(self) -> None:
        # Rollback must finish: a second Ctrl-C would leave the disk half-restored.
        with signals_ignored():
            if self.how == "new" and self.path.exists():
                shutil.rmtree(self.path)
            elif self.how == "empty":
                _empty(self.path)
            elif self.how == "moved":
                if self.path.exists():
                    shutil.rmtree(self.path)
                self.aside.rename(self.path)
            elif self.how == "in place":
                inner = self.path / self.aside.name
                _empty(self.path, keep=inner.name)
                for entry in list(inner.iterdir()):
                    entry.rename(self.path / entry.name)
                inner.rmdir()

    def remove_parents(self) -> None:
        """Remove the directories make_parents created, innermost first, while empty (left
        alone when the environment is in them, or another run put something there)."""
        for parent in self.created_parents:
            try:
                parent.rmdir()
            except OSError:
                return

    def commit(self) -> None:
        """Delete the old environment, renamed to the trash name first: an interrupted deletion
        leaves a directory whose name says it is garbage, not an `.envsetup-old-` one."""
        if self.how == "moved":
            old, trash = self.aside, self.trash
        elif self.how == "in place":
            old, trash = self.path / self.aside.name, self.path / self.trash.name
        else:
            return
        with signals_ignored():
            old.rename(trash)
        try:
            shutil.rmtree(trash)
        except BaseException as error:
            reason = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
            print(
                f"envsetup: the new environment is ready, but deleting the old one was cut short "
                f"({reason}): {trash} is left; the next `envsetup venv` on {self.path} removes "
                "it, or delete it yourself",
                file=sys.stderr,
            )
            if isinstance(error, KeyboardInterrupt):
                raise


def create_argv(path: Path, *, installer: str, base_python: str, existing: bool) -> list[str]:
    """The command that creates an empty environment (with pip when pip will install into it);
    `existing`: PATH holds the old contents' hidden directory, which uv must leave alone."""
    if installer == "uv":
        keep = ["--allow-existing"] if existing else []
        return [find_uv(), "venv", *keep, "--python", base_python, str(path)]
    return [base_python, "-m", "venv", str(path)]


def create_venv(
    path: Path,
    plan: Plan,
    *,
    base_python: str | None = None,
    installer: str = "pip",
    force: bool = False,
    replace_in_place: bool = False,
    machine: Machine | None = None,
    out: TextIO | None = None,
) -> VenvResult:
    """Create `path` holding `plan`, verified; on any failure leave the disk as it was.

    `replace_in_place`: with --force, an environment that cannot be renamed aside (a mount
    point, an unwritable parent) is replaced inside its own directory.
    """
    path = Path(path).absolute()
    check_target(path, force=force)
    rollback = _Rollback(path, in_place=replace_in_place)
    try:
        rollback.make_parents()
        with target_lock(path):
            check_target(path, force=force)  # again: another run may have finished meanwhile
            return _build(
                rollback,
                plan,
                base=base_python or sys.executable,
                installer=installer,
                machine=machine,
                out=out,
            )
    finally:
        rollback.remove_parents()


def _build(
    rollback: _Rollback,
    plan: Plan,
    *,
    base: str,
    installer: str,
    machine: Machine | None,
    out: TextIO | None,
) -> VenvResult:
    """Prepare, create, install, verify, commit, under the target's lock; undo on any failure."""
    path = rollback.path
    python = venv_python(path)
    step = "prepare"
    try:
        rollback.prepare(out or sys.stdout)
        steps = {
            "create": create_argv(
                path, installer=installer, base_python=base, existing=rollback.how == "in place"
            ),
            "install": installer_argv(plan, installer=installer, python=str(python)),
        }
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
        restored = rollback.restored
        rollback.undo()
        if rollback.how is None and isinstance(error, EnvsetupError):
            raise  # prepare refused: nothing was touched, and the message says so
        state = "the old environment is back in place" if restored else "nothing was left"
        if isinstance(error, EnvsetupError):
            error.message += f"\n  {path}: {state}"
            raise
        if isinstance(error, KeyboardInterrupt):
            print(f"envsetup: interrupted during step '{step}'; {path}: {state}", file=sys.stderr)
            raise
        raise EnvsetupError(
            f"step '{step}' failed: {type(error).__name__}: {error}\n  {path}: {state}"
        ) from error
    rollback.commit()
    return VenvResult(path, python, report)
