"""`envsetup install`: install the planned torch build into an environment, then verify it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from envsetup.cli._installing import add_installer_argument, announce, installer_output
from envsetup.cli._output import add_output_arguments, emit
from envsetup.cli._report import human
from envsetup.cli._request import (
    add_machine_arguments,
    add_request_arguments,
    add_target_argument,
    machine_from_args,
    request_from_args,
)
from envsetup.terminal import printable

HELP = "Install the right torch build into this (or --python's) environment and verify it."


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_installer_argument(parser)
    parser.add_argument(
        "-y", "--yes", action="store_true", help="replace an installed torch build without asking"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    add_output_arguments(parser)
    add_request_arguments(parser)
    add_machine_arguments(parser)


def run(args: argparse.Namespace) -> int:
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
