"""nox helpers: install the right torch build into a session, and one session per matrix cell.

    import nox
    import envsetup.integrations.nox

    @nox.session
    def tests(session):                          # the build planned for this machine
        envsetup.integrations.nox.install_torch(session)
        envsetup.integrations.nox.install_envsetup(session)   # its pytest plugin: `gpu`, `device`
        session.install("-e", ".", "pytest")
        session.run("pytest")

`cells()` parametrizes an opt-in session over the matrix (docs/ci.md, "nox (your project)").
`install_torch` plans through the same resolver as `envsetup plan` and hands the arguments to
`session.install`, so it works whether the session's venv is made by virtualenv/venv (pip) or
uv. nox is imported only inside these functions: importing envsetup never pulls it in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from envsetup import settings
from envsetup.install.interpreter import PYTHON_TAG
from envsetup.model.plan import PYTORCH_INDEX_BASE, Plan, Request, insecure_index_allowed

if TYPE_CHECKING:
    from nox import Session

    from envsetup.model.machine import Machine

__all__ = ["cells", "install_envsetup", "install_torch", "plan_for_python", "session_python"]


def __dir__() -> list[str]:
    return __all__


def plan_for_python(
    python: str,
    *,
    torch: str | None = None,
    backend: str = "auto",
    with_: Sequence[str] = (),
    machine: Machine | None = None,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for an environment on this machine (or `machine`) whose Python is `python`.

    A mirror comes from ENVSETUP_INDEX_URL; ENVSETUP_ALLOW_INSECURE_INDEX=1 admits an http://
    mirror (a CI cache on the local network, or the tests' 127.0.0.1 index).
    """
    from envsetup.resolve import resolve

    environ = os.environ if environ is None else environ
    if machine is None:
        from envsetup.detect import detect

        machine = detect()
    target = replace(machine, platform=replace(machine.platform, python=python))
    request = Request(
        torch=torch,
        with_=tuple(with_),
        backend=backend,
        index_url_base=settings.get("ENVSETUP_INDEX_URL", environ) or PYTORCH_INDEX_BASE,
        allow_insecure_index=insecure_index_allowed(environ),
    )
    return resolve(target, request)


def session_python(session: Session) -> str:
    """The session interpreter's version as the matrices spell it: "3.11", "3.13t"."""
    probe = f"import sys, sysconfig; print({PYTHON_TAG})"
    output = session.run("python", "-c", probe, silent=True)
    return str(output).strip().splitlines()[-1]


def install_torch(
    session: Session,
    torch: str | None = None,
    backend: str = "auto",
    with_: Sequence[str] = (),
    *,
    machine: Machine | None = None,
) -> Plan:
    """Plan torch (+ companions named in `with_`) for the session's Python and install it.

    The defaults are `envsetup plan`'s: the newest torch whose build fits this machine, no
    companions.

    Torch-family packages come through `--index-url` of the chosen variant, never an extra
    index: inherited settings that add package sources are left out of the install, as for
    `envsetup install`. Returns the Plan so the session can check or print what was installed.
    """
    from envsetup.errors import EnvsetupError
    from envsetup.install.argv import install_options
    from envsetup.install.isolation import announce, isolate

    try:
        plan = plan_for_python(
            session_python(session), torch=torch, backend=backend, with_=with_, machine=machine
        )
    except EnvsetupError as error:  # the session fails with the planner's message, no traceback
        session.error(f"envsetup: {error}")
    for reason in plan.reasons:
        session.log(f"envsetup: {reason}")
    for warning in plan.warnings:
        session.warn(f"envsetup: {warning}")
    outer = {key: value for key, value in {**os.environ, **session.env}.items() if value}
    isolation = isolate(outer)
    announce(isolation, session.warn)
    installer = "uv" if getattr(session, "venv_backend", None) == "uv" else "pip"
    # nox removes a variable whose value is None from the command's environment
    session.install(*install_options(plan, installer=installer), env=isolation.changes)
    return plan


def install_envsetup(session: Session) -> str:
    """Install this envsetup (the checkout, wheel or git URL nox's copy came from) into the
    session, so its pytest plugin is there; returns the requirement installed."""
    from envsetup.errors import EnvsetupError
    from envsetup.integrations.distribution import requirement

    try:
        wanted = requirement()
    except EnvsetupError as error:
        session.error(f"envsetup: {error}")
    session.install(wanted)
    return wanted


def cells(
    torch: str | None = None,
    python: str | Iterable[str] | None = None,
    variants: str | Iterable[str] | None = None,
    *,
    newest: int | None = None,
    platform: str | None = None,
) -> list[Any]:
    """`nox.param`s (python, torch, variant) for `@nox.parametrize("python,torch,variant", ...)`.

    One per published combination on this platform (or `platform`), with ids such as
    python='3.11', torch='2.5.1', variant='cu121' and tags: the variant kind (cpu, cuda, rocm,
    xpu) and the runner it needs (cpu, gpu) — so `nox -t cpu` runs the CPU cells.
    """
    import nox

    from envsetup.integrations.cells import cells as matrix_cells

    if platform is None:
        from envsetup.detect.host import current_platform

        platform = current_platform().key
    found = matrix_cells(
        torch=torch, python=python, variants=variants, platform=platform, newest=newest
    )
    return [
        nox.param(
            cell.python,
            cell.torch,
            cell.variant,
            id=cell.id,
            tags=sorted({cell.tag, cell.runner}),
        )
        for cell in found
    ]
