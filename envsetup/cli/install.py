"""`envsetup install`: install the planned torch build into an environment, then verify it."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
from collections.abc import Iterator
from typing import TextIO

from envsetup import settings
from envsetup.cli._output import add_output_arguments, emit, note
from envsetup.cli._request import (
    add_machine_arguments,
    add_request_arguments,
    machine_from_args,
    request_from_args,
)
from envsetup.install.argv import INSTALLERS
from envsetup.model.plan import Plan
from envsetup.terminal import printable

INSTALLER_CHOICES = ("auto", *INSTALLERS)

HELP = "Install the right torch build into this (or --python's) environment and verify it."


def _installer(value: str) -> str:
    """argparse converts a string default too, so a bad ENVSETUP_INSTALLER is a usage error
    (exit 2) like a bad --installer, not a crash when the command is built."""
    if value not in INSTALLER_CHOICES:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (from --installer or ENVSETUP_INSTALLER); "
            f"expected one of: {', '.join(INSTALLER_CHOICES)}"
        )
    return value


def add_installer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--installer",
        type=_installer,
        choices=INSTALLER_CHOICES,
        default=settings.get("ENVSETUP_INSTALLER") or "auto",
        help="pip, uv (`uv pip install`) or auto (default: uv when on PATH, else pip); "
        "env ENVSETUP_INSTALLER",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="interpreter of the target environment (default: the active virtual or conda "
        "environment, else envsetup's own unless that is a pipx/uv tool environment)",
    )
    add_installer_argument(parser)
    parser.add_argument(
        "-y", "--yes", action="store_true", help="replace an installed torch build without asking"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    add_output_arguments(parser)
    add_request_arguments(parser)
    add_machine_arguments(parser)


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


def run(args: argparse.Namespace) -> int:
    from envsetup.cli.verify import human
    from envsetup.install.argv import choose_installer
    from envsetup.install.run import confirm_replace, install, installer_argv, interruptible
    from envsetup.install.target import find_target
    from envsetup.resolve import resolve

    installer = choose_installer(args.installer)
    request = request_from_args(args)
    target = find_target(args.python)
    machine, installed = machine_from_args(args, target.probe)
    plan = resolve(machine, request, installed=installed)
    argv = installer_argv(plan, installer=installer, python=target.python)
    document = {
        "target": target.to_json(),
        "plan": plan.to_json(),
        "installer": installer,
        "command": shlex.join(argv),
    }
    if args.dry_run:
        emit(args, json.dumps(document, indent=2) if args.json else shlex.join(argv))
        return 0
    confirm_replace(plan, target.python, yes=args.yes, interactive=sys.stdin.isatty())
    announce(args, plan, target.describe())
    # SIGTERM stops the installer too, instead of orphaning it
    with interruptible(), installer_output(args) as out:
        report = install(plan, python=target.python, installer=installer, machine=machine, out=out)
    if args.json:
        emit(args, json.dumps({**document, "verify": report.to_json()}, indent=2))
    else:
        emit(args, printable(human(report)))
    return 0 if report.ok else 1
