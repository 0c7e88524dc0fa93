"""`envsetup plan`: say which torch build to install, from where, and why — for this machine or
one described by flags — and print the commands for the chosen installer and shell."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from envsetup.errors import UsageError
from envsetup.machine import Gpu, Machine, Platform
from envsetup.plan import Plan
from envsetup.render import FORMATS, SHELLS, command_lines, render

HELP = "Say which PyTorch build fits this (or a described) machine, and how to install it."


#: Flags that describe another machine; any of them turns live detection off.
_MACHINE_FLAGS = ("driver", "cuda", "compute_cap", "nvidia_smi_output", "platform", "gpu")


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
    from envsetup.commands._request import request_from_args
    from envsetup.resolve import resolve

    request = request_from_args(args)  # bad specifiers fail here, before any probing
    machine, installed = _machine(args)
    plan = resolve(machine, request, installed=installed)
    commands = command_lines(plan, args.installer, args.shell)
    if args.json:
        document = {**plan.to_json(), "installer": args.installer, "commands": commands}
        if args.installer not in ("pip", "uv"):
            document["snippet"] = render(plan, args.installer, args.shell)
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(_human(plan, args.installer, args.shell, commands))
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


def _machine(args: argparse.Namespace) -> tuple[Machine, dict[str, str] | None]:
    """The machine to plan for, and the torch builds installed in the target environment."""
    python, installed = _target_python(args.python)
    if not any(getattr(args, name) is not None for name in _MACHINE_FLAGS):
        from envsetup.detect import detect

        machine = detect(shutdown_nvml=False)  # a CLI process: exit releases NVML
        if python is not None:
            machine = replace(machine, platform=replace(machine.platform, python=python))
        elif installed is None:  # the target is this interpreter's environment
            from envsetup.installed import installed_versions

            installed = installed_versions()
        return machine, installed
    return _described(args, python), installed


def _target_python(value: str | None) -> tuple[str | None, dict[str, str] | None]:
    from envsetup.matrices import PYTHON_RE

    if value is None:
        return None, None
    if PYTHON_RE.fullmatch(value):
        return value, None
    if not (os.sep in value or "/" in value or Path(value).suffix == ".exe" or "python" in value):
        raise UsageError(
            f"--python {value!r} is neither a version like 3.11 / 3.13t nor an interpreter path"
        )
    from envsetup.installed import interpreter_facts

    return interpreter_facts(value)


def _described(args: argparse.Namespace, python: str | None) -> Machine:
    """A machine built from flags, for planning a machine other than this one."""
    from envsetup.probe.host import python_tag
    from envsetup.probe.overrides import normalise_capabilities, normalise_cuda, normalise_driver

    if args.platform is not None:
        os_name, _, arch = args.platform.partition("-")
        platform = Platform(os=os_name, arch=arch, python=python or python_tag())
    else:
        from envsetup.probe.host import current_platform

        platform = current_platform()
        if python is not None:
            platform = replace(platform, python=python)
    if args.gpu == "none":
        flags = _MACHINE_FLAGS[:4]
        given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name)]
        if given:
            raise UsageError(f"--gpu none contradicts {', '.join(given)}")
        return Machine(platform=platform)
    machine = Machine(platform=platform)
    if args.nvidia_smi_output is not None:
        machine = _from_smi(args.nvidia_smi_output, platform)
    driver, cuda, gpus = machine.driver_version, machine.cuda_version, machine.gpus
    try:
        if args.driver is not None:
            driver = normalise_driver(args.driver)
        if args.cuda is not None:
            cuda = normalise_cuda(args.cuda)
        if args.compute_cap is not None:
            caps = normalise_capabilities(args.compute_cap)
            gpus = tuple(Gpu(index=i, compute_capability=cc) for i, cc in enumerate(caps))
    except ValueError as error:
        raise UsageError(
            f"invalid machine flag value {str(error)!r}",
            hint="expected --driver 535.104.05, --cuda 12.2, --compute-cap 8.6[,9.0]",
        ) from None
    return replace(machine, driver_version=driver, cuda_version=cuda, gpus=gpus)


def _from_smi(path: str, platform: Platform) -> Machine:
    from envsetup.detect import machine_from_saved_output

    return machine_from_saved_output(path, platform=platform)
