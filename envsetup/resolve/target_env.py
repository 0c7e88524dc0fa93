"""A plan compared with the torch builds the target environment already has: what it keeps,
upgrades in place, or replaces (and must force-reinstall).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from packaging.version import Version

from envsetup.model.plan import Plan

if TYPE_CHECKING:
    from envsetup.matrices import Matrices


def _with_installed(plan: Plan, installed: dict[str, str], matrices: Matrices) -> Plan:
    """Say what the plan replaces when the target environment has a different build."""
    release = None if plan.release is None else matrices.release(plan.release)
    default = None if release is None else release.pypi_default.get(plan.platform)
    differing = []
    same = []
    upgraded = []
    for pin in plan.packages:
        name, _, wanted = pin.partition("==")
        have = installed.get(name)
        if have is None:
            continue
        if wanted and _same_build(plan, Version(have), Version(wanted), default):
            same.append(f"{name} {have}")
        elif wanted and name == "torch" and _same_variant(plan, Version(have), matrices):
            upgraded.append(f"{name}=={have}")
        elif wanted and upgraded and Version(have).local == Version(installed["torch"]).local:
            upgraded.append(f"{name}=={have}")  # a companion built like torch follows it
        else:
            differing.append(f"{name}=={have}")
    reasons = list(plan.reasons)
    if same:
        reasons.append("already installed: " + ", ".join(same))
    if upgraded:
        # The installer moves between versions of one build on its own; forcing a reinstall
        # would reinstall every dependency too.
        reasons.append(
            "upgrades " + ", ".join(upgraded) + " installed in the target environment "
            "(the same build: a plain upgrade, no forced reinstall)"
        )
    upgrades = ", ".join(upgraded) or None
    if not differing:
        return replace(plan, upgrades=upgrades, reasons=tuple(reasons))
    reasons.append(
        "replaces " + ", ".join(differing) + " installed in the target environment "
        "(a different build; the commands force the reinstall)"
    )
    return replace(plan, replaces=", ".join(differing), upgrades=upgrades, reasons=tuple(reasons))


def _same_build(plan: Plan, have: Version, wanted: Version, pypi_default: str | None) -> bool:
    """An untagged installed version is PyPI's build: the platform's default variant."""
    if have.public != wanted.public:
        return False
    if plan.index_url is None and plan.find_links is None:
        return have.local is None
    return (have.local or pypi_default) == plan.variant


def _same_variant(plan: Plan, have: Version, matrices: Matrices) -> bool:
    """Whether an installed torch at another version is the plan's variant (2.13.0+cpu and
    2.14.0+cpu); an untagged one is its own release's PyPI default."""
    if plan.channel != "stable":
        return False
    if plan.index_url is None and plan.find_links is None:
        return have.local is None
    release = matrices.release(have.public) if have.local is None else None
    label = have.local or (release.pypi_default.get(plan.platform) if release else None)
    return label == plan.variant
