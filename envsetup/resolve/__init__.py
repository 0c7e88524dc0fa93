"""Pure decisions: from a Machine and a Request to a Plan, with a reason for every choice.

The rules (docs/cli.md "How envsetup chooses"): the driver's minor-version-compatibility floor is a
hard limit; every visible GPU's compute capability must be in the wheel; a wheel must exist for
the Python and platform; the newest torch wins, then the best variant for it; companions are
pinned to their paired versions from the same index. Facts come from `envsetup.matrices`; this
package only applies them, and never runs a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from envsetup.errors import EnvsetupError, UsageError
from envsetup.model.machine import Machine
from envsetup.model.plan import Plan, Request
from envsetup.resolve.choose import _channel_plan, _stable_plan
from envsetup.resolve.context import NoCompatibleBuild, _context
from envsetup.resolve.request import (
    COMPANIONS,
    _check_url,
    _user_constraints,
    parse_companions,
    torch_pin,
)
from envsetup.resolve.target_env import _with_installed

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices import Matrices

__all__ = ["NoCompatibleBuild", "first_fit", "resolve"]


def resolve(
    machine: Machine,
    request: Request,
    matrices: Matrices | None = None,
    *,
    installed: dict[str, str] | None = None,
) -> Plan:
    """Decide the exact wheels and index for `machine`, or raise NoCompatibleBuild."""
    if matrices is None:
        from envsetup.matrices import load

        matrices = load()
    spec = torch_pin(request.torch)
    companions: dict[str, SpecifierSet | None] = {**parse_companions(request.with_)}
    spec = _user_constraints(request, spec, companions)
    base = _check_url(request.index_url_base, "--index-url-base", request.allow_insecure_index)
    links = (
        None
        if request.find_links_base is None
        else _check_url(request.find_links_base, "--find-links-base", request.allow_insecure_index)
    )
    if request.policy not in ("compat", "strict"):
        raise UsageError(f"--policy {request.policy!r}: expected compat or strict")
    if request.channel not in ("stable", "test", "nightly"):
        raise UsageError(f"--channel {request.channel!r}: expected stable, test or nightly")
    bystanders = {
        name: version
        for name, version in (installed or {}).items()
        if name in COMPANIONS and name not in companions
    }
    context = _context(machine, request, matrices, base, links, installed=bystanders)
    if request.channel != "stable":
        plan = _channel_plan(context, spec, {**companions, **dict.fromkeys(context.installed)})
    else:
        plan = _stable_plan(context, spec, companions)
    if request.constraints or request.follow_up:
        said = [
            f"{name}{specifier} ({origin}) constrains the choice"
            for name, specifier, origin in request.constraints
        ]
        plan = replace(
            plan,
            reasons=(*plan.reasons, *said, *request.user_notes),
            follow_up=request.follow_up,
        )
    return _with_installed(plan, installed or {}, matrices)


def first_fit(
    machine: Machine, requests: Iterable[Request], *, installed: dict[str, str] | None = None
) -> Plan | None:
    """The plan of the first request any build satisfies, None when none does: a suggested fix
    keeps what the user has (the installed release) when it can, else takes the planner's best."""
    for request in requests:
        try:
            return resolve(machine, request, installed=installed)
        except EnvsetupError:
            continue
    return None
