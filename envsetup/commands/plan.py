"""`envsetup plan`: say which torch build to install, from where, and why — for this machine or
one described by flags — and print the commands for the chosen installer and shell."""

from __future__ import annotations

import argparse
import json
import os

from envsetup.plan import Plan
from envsetup.render import FORMATS, SHELLS, command_lines, render
from envsetup.terminal import printable

HELP = "Say which PyTorch build fits this (or a described) machine, and how to install it."


def configure(parser: argparse.ArgumentParser) -> None:
    from envsetup.commands._request import add_machine_arguments, add_request_arguments
    from envsetup.matrices import PLATFORMS  # planning loads the matrices anyway

    add_machine_arguments(parser)
    target = parser.add_argument_group("target")
    target.add_argument(
        "--python",
        metavar="X.Y|PATH",
        help="target Python version (3.11, 3.13t) or interpreter (its installed torch is read)",
    )
    target.add_argument("--platform", choices=PLATFORMS, help="target OS and CPU")
    add_request_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--installer", choices=FORMATS, default="pip")
    shell = "powershell" if os.name == "nt" else "posix"
    output.add_argument("--shell", choices=SHELLS, default=shell)
    output.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    from envsetup.commands._request import fleet_from_args, machine_from_args, request_from_args
    from envsetup.resolve import resolve

    request = request_from_args(args)  # bad specifiers fail here, before any probing
    machine, installed = machine_from_args(args, args.python)
    fleet = fleet_from_args(args)
    if fleet is not None:  # the same machine, planned with which node forced what
        from envsetup.fleet import plan_fleet

        plan = plan_fleet(fleet, request, python=machine.platform.python, installed=installed)
    else:
        plan = resolve(machine, request, installed=installed)
    commands = command_lines(plan, args.installer, args.shell)
    if args.json:
        document = {**plan.to_json(), "installer": args.installer, "commands": commands}
        if args.installer not in ("pip", "uv"):
            document["snippet"] = render(plan, args.installer, args.shell)
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(printable(_human(plan, args.installer, args.shell, commands)))
    return 0


def _human(plan: Plan, installer: str, shell: str, commands: list[str]) -> str:
    """The commands first (what to do), then why, then what to watch and what else would work."""
    if installer in ("pip", "uv"):
        lines = list(commands)
    else:
        lines = [render(plan, installer, shell).rstrip(), "", "then run: " + commands[0]]
    sections = {"why": plan.reasons, "warnings": plan.warnings, "alternatives": plan.alternatives}
    for title, items in sections.items():
        if items:
            lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
    return "\n".join(lines)
