"""What `install` and `venv` share: the --installer flag, where the installer's output goes,
and the announcement of what is about to be installed where."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from envsetup import settings
from envsetup.cli._output import note
from envsetup.install.argv import INSTALLERS
from envsetup.model.plan import Plan

__all__ = [
    "INSTALLER_CHOICES",
    "add_installer_argument",
    "announce",
    "default_installer",
    "installer_output",
    "installer_type",
]

INSTALLER_CHOICES = ("auto", *INSTALLERS)


def installer_type(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type for --installer: argparse converts a string default too, so a bad
    ENVSETUP_INSTALLER is a usage error (exit 2) like a bad --installer, not a crash later."""

    def installer(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {value!r} (from --installer or ENVSETUP_INSTALLER); "
                f"expected one of: {', '.join(choices)}"
            )
        return value

    return installer


def default_installer() -> str:
    """ENVSETUP_INSTALLER, else auto: `plan` prints what `install` and `venv` would run."""
    return settings.get("ENVSETUP_INSTALLER") or "auto"


def add_installer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--installer",
        type=installer_type(INSTALLER_CHOICES),
        choices=INSTALLER_CHOICES,
        default=default_installer(),
        help="pip, uv (`uv pip install`) or auto (default: uv when on PATH, else pip); "
        "env ENVSETUP_INSTALLER",
    )


@contextlib.contextmanager
def installer_output(args: argparse.Namespace) -> Iterator[TextIO]:
    """Where the installer's own output goes: stderr as it runs, its tail not repeated on
    failure; with -q nowhere, and a failure then quotes its last lines once. --json keeps it on
    stderr: stdout holds only the JSON document either way."""
    if args.quiet:
        yield io.StringIO()
        return
    from envsetup.install.run import StepFailed

    try:
        yield sys.stderr
    except StepFailed as failure:
        raise failure.without_tail() from None


def announce(args: argparse.Namespace, plan: Plan, python: str) -> None:
    """What is about to happen, where and why, before the installer's output starts (stderr)."""
    from envsetup.redact import redact

    source = redact(plan.source)
    lines = [f"envsetup: installing {' '.join(plan.packages)} from {source} into {python}"]
    lines += [f"  - {reason}" for reason in plan.reasons]
    lines += [f"  ! {warning}" for warning in plan.warnings]
    note(args, *lines)
