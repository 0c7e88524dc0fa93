"""The rows of the matrices as frozen dataclasses: each says what it claims, where the claim
comes from, and whether a primary source confirms it, so callers can weigh every fact.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.version import Version

from envsetup.errors import EnvsetupError
from envsetup.model.variants import version_tuple

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet


#: The ">=A,<B" range every archs.toml row uses, compared without packaging.specifiers.
_RANGE_RE = re.compile(r"^>=(\d+(?:\.\d+)*),<(\d+(?:\.\d+)*)$")


class MatricesError(EnvsetupError):
    """A data file is missing or malformed: names the file and the row, says how to fix it."""


def _os_of(os_or_platform: str) -> str:
    """Accept "linux", "windows", or a platform key; the NVIDIA tables only know the OS."""
    return os_or_platform.split("-", 1)[0]


class _DriverMinimums:
    """A row holding a Linux and a Windows minimum driver, either possibly unknown."""

    linux: str | None
    windows: str | None
    unconfirmed: tuple[str, ...]

    @property
    def confirmed(self) -> bool:
        return not self.unconfirmed

    def driver(self, os: str) -> str | None:
        return self.linux if _os_of(os) == "linux" else self.windows


@dataclass(frozen=True)
class Toolkit(_DriverMinimums):
    """One row of NVIDIA's "toolkit and corresponding driver" table."""

    cuda: str  # "12.2"
    update: int  # 0 = GA
    release: str  # as NVIDIA prints it: "CUDA 12.2 Update 2"
    linux: str | None
    windows: str | None
    source: str
    branch: str | None = None
    unconfirmed: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class MinorCompat(_DriverMinimums):
    """The lowest driver that runs every toolkit of one CUDA major (minor-version compatibility)."""

    cuda_major: int
    linux: str | None
    windows: str | None
    source: str
    unconfirmed: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class Release:
    """One torch release: the wheels published for it and the companions paired with it."""

    torch: str
    date: str
    python: tuple[str, ...]  # every Python with a wheel on at least one platform ("3.13t" too)
    variants: Mapping[str, tuple[str, ...]]  # platform key -> variants on download.pytorch.org
    pypi_default: Mapping[str, str]  # platform key -> what plain `pip install torch` installs
    torchvision: str | None
    torchaudio: str | None  # None: no torchaudio release pairs with this torch
    sources: tuple[str, ...]
    python_unconfirmed: tuple[str, ...] = ()  # Pythons a source names but no wheel list confirms
    python_platforms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    python_variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    confirmed: bool = True
    unconfirmed: tuple[str, ...] = ()  # field names no source confirms
    notes: str = ""

    def __hash__(self) -> int:  # the mappings are not hashable; the version identifies a release
        return hash(self.torch)

    @functools.cached_property
    def version(self) -> Version:
        return Version(self.torch)

    def pythons(self, platform: str) -> tuple[str, ...]:
        """The Pythons with wheels on `platform` (empty when the platform has no wheels)."""
        if not self.variants.get(platform):
            return ()
        return tuple(
            py
            for py in self.python
            if py not in self.python_platforms or platform in self.python_platforms[py]
        )

    def has_wheel(self, python: str, platform: str, variant: str | None = None) -> bool:
        """Whether a wheel exists for this Python and platform (and variant, when given).

        `python_variants` narrows a Python to some variants (2.6 built 3.13 for no ROCm variant).
        """
        if python not in self.pythons(platform):
            return False
        if variant is None:
            return True
        if variant not in self.variants.get(platform, ()):
            return False
        return python not in self.python_variants or variant in self.python_variants[python]


@dataclass(frozen=True)
class ArchList:
    """The GPU code inside the wheels of one CUDA variant for a range of torch releases."""

    torch: str  # PEP 440 specifier of the releases this row covers
    variant: str
    platforms: tuple[str, ...]
    sm: tuple[str, ...]  # compute capabilities with SASS, "8.6"
    ptx: str | None  # compute capability whose PTX is embedded (JIT for newer GPUs), or None
    source: str
    confirmed: bool = True
    notes: str = ""

    @functools.cached_property
    def specifier(self) -> SpecifierSet:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet  # lazy: ~10 ms import

        try:
            return SpecifierSet(self.torch)
        except InvalidSpecifier:
            raise MatricesError(
                f"archs.toml: torch = {self.torch!r} ({self.variant}) is not a PEP 440 specifier",
                hint="fix the data file (schema in matrices/README.md)",
            ) from None

    @functools.cached_property
    def _bounds(self) -> tuple[Version, Version] | None:
        match = _RANGE_RE.fullmatch(self.torch.replace(" ", ""))
        return None if match is None else (Version(match[1]), Version(match[2]))

    def includes(self, version: Version) -> bool:
        """`version in self.specifier`, by plain comparison for a final release in a ">=A,<B"
        row: importing packaging.specifiers costs ~15 ms of every `envsetup plan`."""
        bounds = self._bounds
        if bounds is None or version.is_prerelease:  # PEP 440's pre-release rules: the full path
            return version in self.specifier
        return bounds[0] <= version < bounds[1]

    def covers(self, compute_capability: str) -> bool:
        """Whether a GPU of this compute capability can run the wheel's kernels.

        SASS for X.Y runs on X.Z with Z >= Y (same major); PTX for X.Y is JIT-compiled on any newer
        GPU. Arch-specific targets ("9.0a") are not listed in the matrices, so the rule holds.
        """
        target = version_tuple(compute_capability)
        for arch in self.sm:
            major, minor = version_tuple(arch)[:2]
            if major == target[0] and minor <= target[1]:
                return True
        return self.ptx is not None and version_tuple(self.ptx) <= target

    def get_arch_list(self) -> tuple[str, ...]:
        """The list as `torch.cuda.get_arch_list()` prints it: sm_XY, then compute_XY for PTX."""
        names = [arch_name(arch) for arch in self.sm]
        if self.ptx is not None:
            names.append(arch_name(self.ptx, "compute"))
        return tuple(names)

    @classmethod
    def from_torch(cls, names: Iterable[str]) -> ArchList:
        """`torch.cuda.get_arch_list()` read back (the inverse of `get_arch_list`), so a built
        wheel's own list and the matrices' rows are judged by one `covers` rule."""
        sm: list[str] = []
        ptx: str | None = None
        for name in names:
            kind, _, digits = name.partition("_")
            if not digits.isdigit() or len(digits) < 2:
                continue  # "sm_90a": arch-specific code runs on exactly that GPU, not on newer ones
            capability = f"{digits[:-1]}.{digits[-1]}"
            if kind == "sm":
                sm.append(capability)
            elif kind == "compute" and (
                ptx is None or version_tuple(capability) > version_tuple(ptx)
            ):
                ptx = capability
        return cls("", "", (), tuple(sm), ptx, "torch.cuda.get_arch_list()")


def arch_name(compute_capability: str, kind: str = "sm") -> str:
    """ "8.6" → "sm_86" ("compute_86" for PTX): torch's spelling of a GPU architecture, which
    plans, checks and test skips print so users can match it against `get_arch_list()`."""
    major, minor = version_tuple(compute_capability)[:2]
    return f"{kind}_{major}{minor}"


@dataclass(frozen=True)
class RocmTargets:
    """The gfx targets compiled into the wheels of one ROCm variant."""

    variant: str
    gfx: tuple[str, ...]  # empty: not known
    source: str
    confirmed: bool = True
    notes: str = ""
