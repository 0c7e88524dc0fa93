"""`envsetup install`: install the planned torch build into an environment, then verify it."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from envsetup.commands._request import (
    add_machine_arguments,
    add_request_arguments,
    machine_from_args,
    request_from_args,
)
from envsetup.install_args import INSTALLERS
from envsetup.plan import Plan
from envsetup.terminal import printable

HELP = "Install the right torch build into this (or --python's) environment and verify it."


def _installer(value: str) -> str:
    """argparse converts a string default too, so a bad ENVSETUP_INSTALLER is a usage error
    (exit 2) like a bad --installer, not a crash when the command is built."""
    if value not in INSTALLERS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (from --installer or ENVSETUP_INSTALLER); "
            f"expected one of: {', '.join(INSTALLERS)}"
        )
    return value


def add_installer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--installer",
        type=_installer,
        choices=INSTALLERS,
        default=os.environ.get("ENVSETUP_INSTALLER") or "pip",
        help="pip (default) or uv (`uv pip install`); env ENVSETUP_INSTALLER",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--python", metavar="PATH", help="interpreter of the target environment (default: this one)"
    )
    add_installer_argument(parser)
    parser.add_argument(
        "-y", "--yes", action="store_true", help="replace an installed torch build without asking"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    add_request_arguments(parser)
    add_machine_arguments(parser)


def announce(plan: Plan) -> None:
    """What is about to happen and why, before the installer's output starts."""
    from envsetup.redact import redact

    lines = [f"envsetup: installing {' '.join(plan.packages)} from {redact(plan.source)}"]
    lines.extend(f"  - {reason}" for reason in plan.reasons)
    lines.extend(f"  ! {warning}" for warning in plan.warnings)
    print(printable("\n".join(lines)), flush=True)


def run(args: argparse.Namespace) -> int:
    from envsetup.commands.verify import human
    from envsetup.install import confirm_replace, install, installer_argv, interruptible
    from envsetup.resolve import resolve

    request = request_from_args(args)
    python = args.python or sys.executable
    machine, installed = machine_from_args(args, args.python)
    plan = resolve(machine, request, installed=installed)
    argv = installer_argv(plan, installer=args.installer, python=python)
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    confirm_replace(plan, python, yes=args.yes, interactive=sys.stdin.isatty())
    announce(plan)
    with interruptible():  # SIGTERM stops the installer too, instead of orphaning it
        report = install(plan, python=python, installer=args.installer, machine=machine)
    print(printable(human(report)))
    return 0 if report.ok else 1
