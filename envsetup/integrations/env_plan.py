"""The plan for a test environment (a nox session, a tox environment) on this machine.

Both integrations know only the environment's Python; the machine is this one (or a given
one) and a mirror comes from the environment variables. Shared here so neither imports the
other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from envsetup import settings
from envsetup.model.plan import PYTORCH_INDEX_BASE, Plan, Request, insecure_index_allowed

if TYPE_CHECKING:
    from envsetup.model.machine import Machine

__all__ = ["plan_for_python"]


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
