"""The python x torch x variant cells a CI matrix runs, derived from `matrices/`.

One list feeds the project's `noxfile.py`, `envsetup.integrations.nox.cells()` for other projects
and
`envsetup matrix --format github|gitlab`, so the sessions, the CI jobs and the resolver all agree
on which combinations exist. A cell is generated only where the matrices say a wheel is published
(release x Python x variant on the platform): impossible cells never appear, so nobody has to
write exclusion lists by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from envsetup.errors import UsageError
from envsetup.model.variants import KINDS, parse_variant

if TYPE_CHECKING:
    from envsetup.matrices import Matrices
    from envsetup.matrices.schema import Release
    from envsetup.model.machine import Machine

__all__ = [
    "DEFAULT_PLATFORM",
    "Cell",
    "ReleaseCells",
    "cells",
    "missing_hardware",
    "newest_count",
    "select_releases",
]


def __dir__() -> list[str]:
    return __all__


#: CI runners are Linux x86_64 unless the caller says otherwise.
DEFAULT_PLATFORM = "linux-x86_64"

#: What a cell of each variant kind needs from the machine to run its device checks.
_HARDWARE = {
    "cpu": "no accelerator",
    "cuda": "an NVIDIA GPU",
    "rocm": "an AMD GPU",
    "xpu": "an Intel GPU",
}


@dataclass(frozen=True)
class Cell:
    """One CI job: this torch release, built for this variant, on this Python."""

    python: str  # "3.11", "3.13t"
    torch: str  # exact release, "2.5.1"
    variant: str  # "cpu", "cu121", "rocm6.2", "xpu"
    platform: str = DEFAULT_PLATFORM

    @property
    def tag(self) -> str:
        """The variant kind, used as a nox tag: "cpu" | "cuda" | "rocm" | "xpu"."""
        return parse_variant(self.variant).kind

    @property
    def runner(self) -> str:
        """The CI runner label a job needs: "cpu" or "gpu"."""
        return "cpu" if self.tag == "cpu" else "gpu"

    @property
    def hardware(self) -> str:
        """The hardware the device checks of this cell need, in words."""
        return _HARDWARE[self.tag]

    @property
    def id(self) -> str:
        """The nox parameter id, exactly as nox prints a call spec: python='3.11', torch=..."""
        return f"python={self.python!r}, torch={self.torch!r}, variant={self.variant!r}"

    def session(self, name: str = "verify") -> str:
        """The nox session name of this cell: verify(python='3.11', torch='2.5.1', ...)."""
        return f"{name}({self.id})"

    def to_json(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "torch": self.torch,
            "variant": self.variant,
            "tag": self.tag,
            "runner": self.runner,
            "platform": self.platform,
            "session": self.session(),
        }


def _variant_filter(variants: Iterable[str] | None) -> set[str] | None:
    """Normalise names ("cu121", "cuda12.1") and kinds ("cuda", "rocm") to match cells against."""
    if variants is None:
        return None
    wanted: set[str] = set()
    for item in variants:
        value = item.strip().lower()
        if value in KINDS:
            wanted.add(value)
            continue
        try:
            wanted.add(parse_variant(value).name)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return wanted


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


def newest_count(value: int | str | None, name: str = "newest") -> int | None:
    """How many of the newest releases to keep (None: all), read one way with one message for
    `envsetup matrix --newest`, the noxfile's ENVSETUP_NEWEST and `cells(newest=)`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UsageError(f"{name}={text!r}: expected a positive number of releases")
    return int(text)


@dataclass(frozen=True)
class ReleaseCells:
    """One release as the filters leave it: its cells on the platforms asked about."""

    release: Release
    cells: tuple[Cell, ...]

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms with at least one cell, in the order asked."""
        return tuple(dict.fromkeys(cell.platform for cell in self.cells))


def select_releases(
    matrices: Matrices | None = None,
    *,
    torch: str | None = None,
    python: str | Iterable[str] | None = None,
    variants: str | Iterable[str] | None = None,
    platforms: Sequence[str] = (DEFAULT_PLATFORM,),
    newest: int | None = None,
) -> tuple[ReleaseCells, ...]:
    """The releases with a published wheel on `platforms` that `torch`, `python` and `variants`
    allow, newest first. `newest` then keeps the first N of them: "the N newest releases that
    still have cells after the other filters", the one meaning of `--newest` everywhere.

    `torch` is a version or specifier, `python` and `variants` are lists (or comma-separated
    strings; variants may name kinds such as "cuda").
    """
    if matrices is None:
        from envsetup.matrices import load

        matrices = load()
    newest = newest_count(newest)
    from envsetup.resolve.request import parse_torch_spec

    spec = parse_torch_spec(torch)
    pythons = _as_tuple(python)
    wanted = _variant_filter(_as_tuple(variants))
    selected: list[ReleaseCells] = []
    for release in sorted(matrices.releases, key=lambda item: item.version, reverse=True):
        if not spec.contains(release.version, prereleases=True):
            continue
        found = tuple(
            Cell(python=py, torch=release.torch, variant=variant, platform=platform)
            for platform in platforms
            for py in release.pythons(platform)
            if pythons is None or py in pythons
            for variant in release.variants.get(platform, ())
            if wanted is None or variant in wanted or parse_variant(variant).kind in wanted
            if release.has_wheel(py, platform, variant)
        )
        if found:
            selected.append(ReleaseCells(release, found))
    return tuple(selected if newest is None else selected[:newest])


def cells(
    matrices: Matrices | None = None,
    *,
    torch: str | None = None,
    python: str | Iterable[str] | None = None,
    variants: str | Iterable[str] | None = None,
    platform: str = DEFAULT_PLATFORM,
    newest: int | None = None,
) -> tuple[Cell, ...]:
    """Every published (python, torch, variant) combination on `platform`, filtered as
    `select_releases` filters. Ordered newest torch first, then Python, then variant."""
    selected = select_releases(
        matrices,
        torch=torch,
        python=python,
        variants=variants,
        platforms=(platform,),
        newest=newest,
    )
    return tuple(cell for group in selected for cell in group.cells)


def missing_hardware(cell: Cell, machine: Machine, matrices: Matrices | None = None) -> str | None:
    """Why `machine` cannot run `cell` for real, or None when it can.

    Presence of the accelerator is judged here; the driver floor and the wheel's GPU
    architectures are the resolver's rules, so the cell is planned for this machine and the
    resolver's refusal (with its hint) is the reason.
    """
    if cell.platform != machine.platform.key:
        return f"{cell.session()} is for {cell.platform}; this machine is {machine.platform.key}"
    kind = cell.tag
    if kind == "cuda" and not machine.nvidia_gpus:
        found = "no NVIDIA GPU was detected"
    elif kind == "rocm" and not machine.amd_gpus:
        found = "no AMD GPU was detected"
    elif kind == "xpu" and not machine.xpu:
        found = "no Intel GPU was detected"
    else:
        from envsetup.model.plan import Request
        from envsetup.resolve import NoCompatibleBuild, resolve

        target = replace(machine, platform=replace(machine.platform, python=cell.python))
        try:
            resolve(target, Request(torch=f"=={cell.torch}", backend=cell.variant), matrices)
        except NoCompatibleBuild as error:
            return f"{cell.session()} cannot run on this machine: {error}"
        return None
    return f"{cell.session()} needs {cell.hardware}; {found} on this machine"
