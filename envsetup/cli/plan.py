"""`envsetup plan`: say which torch build to install, from where, and why — for this machine or
one described by flags — and print the commands for the chosen installer and shell.

The command or snippet goes to stdout (or `-o FILE`), the reasons to stderr: redirected, the
output is a file the installer reads as it is."""

from __future__ import annotations

import argparse
import json
import os

from envsetup.install.render import FORMATS, SHELLS, command_lines, render
from envsetup.model.plan import Plan

HELP = "Say which PyTorch build fits this (or a described) machine, and how to install it."

EPILOG = """\
examples:
  envsetup plan                                 for the active environment on this machine
  envsetup plan --torch '>=2.4' --with torchvision
  envsetup plan --installer requirements > requirements.txt
  envsetup plan --nvidia-smi-output smi.txt     for the machine a pasted nvidia-smi describes
  envsetup plan --json                          one JSON document (errors too)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from envsetup.cli._installing import default_installer, installer_type
    from envsetup.cli._output import add_output_arguments
    from envsetup.cli._request import add_machine_arguments, add_request_arguments
    from envsetup.matrices import PLATFORMS  # planning loads the matrices anyway

    add_machine_arguments(parser)
    target = parser.add_argument_group("target")
    target.add_argument(
        "--python",
        metavar="X.Y|PATH",
        help="target Python version (3.11, 3.13t) or interpreter (its installed torch is read); "
        "default: the active virtual or conda environment",
    )
    target.add_argument(
        "--platform",
        choices=PLATFORMS,
        help="target OS and CPU (default: this machine's, or the one a pasted "
        "--nvidia-smi-output shows: WDDM/TCC or Windows paths mean Windows)",
    )
    parser.set_defaults(paste_platform=True)
    add_request_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--installer",
        type=installer_type(("auto", *FORMATS)),
        choices=("auto", *FORMATS),
        default=default_installer(),
        help="what to print: a pip or uv command, or a requirements/pyproject (uv-project, "
        "poetry), pixi or conda environment snippet; auto (default): uv when on PATH, else pip",
    )
    shell = "powershell" if os.name == "nt" else "posix"
    output.add_argument(
        "--shell",
        choices=SHELLS,
        default=shell,
        help=f"quote commands for this shell (default here: {shell})",
    )
    add_output_arguments(output, snippet=True)


def run(args: argparse.Namespace) -> int:
    from envsetup.cli._output import emit, note
    from envsetup.cli._request import fleet_from_args, machine_from_args, request_from_args
    from envsetup.install.argv import choose_installer
    from envsetup.install.target import find_target
    from envsetup.resolve import resolve

    installer = choose_installer(args.installer)
    request = request_from_args(args)  # bad specifiers fail here, before any probing
    target = find_target(args.python, allow_version=True)
    fleet = fleet_from_args(args)
    machine, installed = machine_from_args(args, target.probe, fleet=fleet)
    if fleet is not None:  # the same machine, planned with which node forced what
        from envsetup.resolve.fleet import plan_fleet

        plan = plan_fleet(fleet, request, python=machine.platform.python, installed=installed)
    else:
        plan = resolve(machine, request, installed=installed)
    commands = command_lines(plan, installer, args.shell)
    if args.json:
        document = {
            **plan.to_json(),
            "target": target.to_json(),
            "installer": installer,
            "commands": commands,
        }
        if installer not in ("pip", "uv"):
            document["snippet"] = render(plan, installer, args.shell)
        emit(args, json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    if installer in ("pip", "uv"):
        emit(args, "\n".join(commands))
    else:
        emit(args, render(plan, installer, args.shell))
    note(args, *_explained(plan, installer, commands, target.describe()))
    return 0


def _explained(plan: Plan, installer: str, commands: list[str], target: str) -> list[str]:
    """What goes to stderr: the target, how to use a snippet, why, what to watch, what else."""
    lines = [f"target: {target}"]
    if installer not in ("pip", "uv"):
        lines.append("then run: " + commands[0])
    sections = {"why": plan.reasons, "warnings": plan.warnings, "alternatives": plan.alternatives}
    for title, items in sections.items():
        if items:
            lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
    return lines
