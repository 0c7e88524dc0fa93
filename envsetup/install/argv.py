"""The argument vector that installs a Plan: shared by renderers (printed) and executors (run).

Torch-family packages only ever come through `--index-url` (or `--find-links` with `--no-index`
for flat mirrors), never through an extra index: an extra index lets PyPI's same-named package win,
which is how the December 2022 `torchtriton` compromise reached users.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from envsetup.model.plan import Plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from envsetup.model.machine import Machine

INSTALLERS = ("pip", "uv")


def choose_installer(name: str) -> str:
    """`auto`: uv when it is on PATH (it installs torch several times faster), else pip."""
    if name != "auto":
        return name
    return "uv" if on_path("uv") else "pip"


def on_path(program: str) -> bool:
    """`shutil.which(program) is not None`, without importing shutil (bz2, lzma: ~5 ms a start)."""
    names = [program + ".exe", program] if os.name == "nt" else [program]
    for folder in os.get_exec_path():
        for name in names:
            path = Path(folder, name)
            if path.is_file() and os.access(path, os.X_OK):
                return True
    return False


def install_argv(
    plan: Plan,
    *,
    installer: str = "pip",
    python: str = "python",
    reinstall: bool = False,
) -> list[str]:
    """The command that installs `plan` into the environment of interpreter `python`.

    For pip: `python -m pip install ...`; for uv: `uv pip install --python python ...`.
    """
    if installer == "pip":
        argv = [python, "-m", "pip", "install"]
    elif installer == "uv":
        argv = ["uv", "pip", "install", "--python", python]
    else:
        raise ValueError(f"unknown installer {installer!r}; expected one of {INSTALLERS}")
    return argv + install_options(plan, installer=installer, reinstall=reinstall)


def source_options(plan: Plan) -> list[tuple[str, ...]]:
    """Where the plan's packages come from, one option per tuple (a requirements file writes
    one per line): `--index-url URL`, or `--no-index` + `--find-links DIR`, then `--pre`."""
    options: list[tuple[str, ...]] = []
    if plan.find_links is not None:
        options += [("--no-index",), ("--find-links", plan.find_links)]
    elif plan.index_url is not None:
        options.append(("--index-url", plan.index_url))
    if plan.pre:
        options.append(("--pre",))
    return options


def install_options(plan: Plan, *, installer: str = "pip", reinstall: bool = False) -> list[str]:
    """The arguments after `pip install` / `uv pip install`: for tools that supply the command
    themselves (nox's `session.install`, tox's install_command)."""
    argv = [part for option in source_options(plan) for part in option]
    if reinstall or plan.replaces is not None:
        argv.append("--force-reinstall" if installer == "pip" else "--reinstall")
    argv += list(plan.packages)
    return argv


def suggested_install(
    machine: Machine,
    python: str,
    installed: Mapping[str, str],
    *,
    wanted: str | None = None,
    backend: str = "auto",
) -> str | None:
    """The one install command envsetup suggests as a fix (verify, the pytest plugin): for
    `wanted`, else the installed torch release when a build of it fits, else the newest that
    does; the installed companions come along. None when nothing fits."""
    from envsetup.model.plan import Request
    from envsetup.resolve import first_fit

    companions = tuple(sorted(name for name in installed if name != "torch"))
    current = installed["torch"].partition("+")[0] if installed.get("torch") else None
    specs = dict.fromkeys([wanted or (f"=={current}" if current else None), None])
    requests = (Request(torch=spec, with_=companions, backend=backend) for spec in specs)
    plan = first_fit(machine, requests, installed=dict(installed))
    return None if plan is None else shlex.join(install_argv(plan, python=python))
