"""`envsetup venv PATH`: a fresh environment with the right torch build, verified, or nothing."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from envsetup.cli._installing import add_installer_argument, announce, installer_output
from envsetup.cli._output import add_output_arguments, emit, note
from envsetup.cli._report import human
from envsetup.cli._request import (
    add_machine_arguments,
    add_request_arguments,
    machine_from_args,
    request_from_args,
)
from envsetup.errors import UsageError

HELP = "Create a virtual environment with the right torch build, verified (all or nothing)."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="where to create the environment")
    parser.add_argument(
        "--python",
        metavar="X.Y|PATH",
        help="base interpreter: a version found on PATH (3.12) or a path (default: this one)",
    )
    add_installer_argument(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing environment at PATH (kept until the new one is verified)",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--replace-in-place",
        action="store_true",
        help="with --force, when PATH cannot be renamed (a mount point, an unwritable parent): "
        "build inside it, its old contents kept in a hidden directory there until verified",
    )
    add_request_arguments(parser)
    add_machine_arguments(parser)


def base_interpreter(value: str | None, installer: str) -> str:
    """The interpreter the environment is made from; uv finds versions itself."""
    from envsetup.matrices import PYTHON_RE  # planning the environment loads them anyway

    if value is None:
        return sys.executable
    if PYTHON_RE.fullmatch(value) and installer != "uv":
        found = shutil.which(f"python{value}")
        if found is None:
            raise UsageError(
                f"--python {value}: no python{value} on PATH",
                hint="install that Python, put it on PATH, or pass the interpreter's path",
            )
        return found
    return value


def run(args: argparse.Namespace) -> int:
    from envsetup.install.argv import choose_installer
    from envsetup.install.installed import interpreter_facts
    from envsetup.install.run import interruptible
    from envsetup.install.venv import activation_line, check_target, create_venv
    from envsetup.matrices import PYTHON_RE
    from envsetup.resolve import resolve

    path = Path(args.path)
    check_target(path, force=args.force)  # before any probing: refuse early and cheaply
    request = request_from_args(args)
    installer = choose_installer(args.installer)
    base = base_interpreter(args.python, installer)
    version = base if PYTHON_RE.fullmatch(base) else interpreter_facts(base)[0]
    machine, _ = machine_from_args(args, version)
    plan = resolve(machine, request)  # a fresh environment: nothing installed to replace
    announce(args, plan, str(path))
    with interruptible(), installer_output(args) as out:
        result = create_venv(
            path,
            plan,
            base_python=base,
            installer=installer,
            force=args.force,
            replace_in_place=args.replace_in_place,
            machine=machine,
            out=out,
        )
    activate = activation_line(result.path)
    if args.json:
        document = {
            "path": str(result.path),
            "activate": activate,
            "installer": installer,
            "plan": plan.to_json(),
            "verify": result.report.to_json(),
        }
        emit(args, json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    # The activation line is the artefact: `eval "$(envsetup venv .venv -q)"` activates it.
    note(args, human(result.report), f"\nenvironment ready: {result.path}", "activate it with:")
    emit(args, activate)
    return 0
