"""Load the compatibility knowledge in `matrices/*.toml` into frozen dataclasses.

Every fact lives once, in the data files, with its source; this package only reads and indexes
it: rows in `schema`, the TOML reader and its cache in `_toml`, lookups here.
The files ship inside the wheel (as `envsetup/matrices/`) and are read from the source tree when
running from a checkout.

CONTRACT (filled in by the matrices work; the resolver codes against these names):

- `load(directory=None) -> Matrices`, cached per directory.
- `Matrices.releases`: every torch release, ascending by version.
- `Matrices.release(version) -> Release | None`.
- `Matrices.arch_list(torch, variant, platform) -> ArchList | None`: the GPU code in that wheel.
- `Matrices.rocm_targets(variant) -> tuple[str, ...] | None`: gfx targets of a ROCm variant.
- `Matrices.minor_compat_floor(cuda_major, os) -> str | None`: NVIDIA's minor-version-compat
  minimum driver for CUDA major X ("525.60.13" for 12 on Linux).
- `Matrices.toolkit_driver(cuda, os) -> str | None`: minimum driver of toolkit release X.Y (GA row).
- `Matrices.max_cuda_for_driver(driver, os) -> str | None`: the newest CUDA X.Y a driver supports
  (for drivers too old to print "CUDA Version").

`os` is "linux" or "windows" (a platform key such as "linux-x86_64" is accepted too).
Values the sources do not confirm are still returned; callers that care read `.confirmed` /
`.unconfirmed` on the row (`Release`, `ArchList`, `Toolkit`, `MinorCompat`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from envsetup.matrices._toml import (
    FILES,
    _arch_list,
    _minor_compat,
    _release,
    _rocm,
    _rows,
    _toolkit,
    read_documents,
    untagged_platform,
)
from envsetup.matrices.schema import MatricesError
from envsetup.model.variants import KINDS, parse_variant

if TYPE_CHECKING:
    from envsetup.matrices.schema import ArchList, MinorCompat, Release, RocmTargets, Toolkit


#: Platform keys used throughout the matrices (`Platform.key`).
PLATFORMS = ("linux-x86_64", "linux-aarch64", "windows-amd64", "macos-arm64", "macos-x86_64")

#: A variant name as it appears in index URLs and local version labels.
VARIANT_RE = re.compile(r"^(cpu|xpu|cu\d{2,3}|rocm\d+\.\d+(\.\d+)?)$")
_CUDA_VARIANT_RE = re.compile(r"^cu(\d{2,3})$")
#: A Python as the matrices and `Platform.python` spell it: "3.11", "3.13t" (free-threaded).
PYTHON_RE = re.compile(r"^3\.\d{1,2}t?$")


def variant_cuda(variant: str) -> str | None:
    """The CUDA version "X.Y" a `cuXY[Z]` variant was built with ("cu121" -> "12.1"), else None;
    only the index's own spelling counts here (the schema test holds the data files to it)."""
    return parse_variant(variant).cuda if _CUDA_VARIANT_RE.match(variant) else None


@dataclass(frozen=True)
class Matrices:
    """Everything the resolver knows about drivers, releases and wheels, with lookups."""

    toolkits: tuple[Toolkit, ...]
    minor_compat: tuple[MinorCompat, ...]
    releases: tuple[Release, ...]
    cuda_archs: tuple[ArchList, ...]
    rocm: tuple[RocmTargets, ...]
    directory: Path
    #: Platforms whose index wheels may lack the `+variant` label (torch.toml `[[untagged]]`).
    untagged_platforms: tuple[str, ...] = ()

    @functools.cached_property
    def _by_version(self) -> dict[Version, Release]:
        return {release.version: release for release in self.releases}

    def release(self, version: str | Version) -> Release | None:
        try:
            key = version if isinstance(version, Version) else Version(version)
        except InvalidVersion:
            return None
        return self._by_version.get(key)

    def variants(self) -> tuple[str, ...]:
        """Every variant any release publishes, sorted by kind then version."""
        names = {v for r in self.releases for vs in r.variants.values() for v in vs}
        return tuple(sorted(names, key=variant_sort_key))

    def arch_list(self, torch: str | Version, variant: str, platform: str) -> ArchList | None:
        version = torch if isinstance(torch, Version) else Version(torch)
        for row in self.cuda_archs:
            if row.variant == variant and platform in row.platforms and row.includes(version):
                return row
        return None

    def rocm_targets(self, variant: str) -> tuple[str, ...] | None:
        for row in self.rocm:
            if row.variant == variant:
                return row.gfx or None
        return None

    def rocm_row(self, variant: str) -> RocmTargets | None:
        return next((row for row in self.rocm if row.variant == variant), None)

    def minor_compat_floor(self, cuda_major: int, os: str) -> str | None:
        for row in self.minor_compat:
            if row.cuda_major == cuda_major:
                return row.driver(os)
        return None

    def toolkit(self, cuda: str, update: int = 0) -> Toolkit | None:
        return next((t for t in self.toolkits if t.cuda == cuda and t.update == update), None)

    def toolkit_driver(self, cuda: str, os: str) -> str | None:
        row = self.toolkit(cuda)
        return None if row is None else row.driver(os)

    def max_cuda_for_driver(self, driver: str, os: str) -> str | None:
        """The newest CUDA X.Y whose GA driver is at or below `driver` (None: older than all)."""
        try:
            have = Version(driver)
        except InvalidVersion:
            return None
        best: tuple[Version, str] | None = None
        for row in self.toolkits:
            needed = row.driver(os)
            if row.update != 0 or needed is None or Version(needed) > have:
                continue
            cuda = Version(row.cuda)
            if best is None or cuda > best[0]:
                best = (cuda, row.cuda)
        return None if best is None else best[1]


def variant_sort_key(variant: str) -> tuple[int, tuple[int, ...]]:
    """cpu, then CUDA ascending, then ROCm ascending, then xpu (the order of `variants.KINDS`);
    unknown names last."""
    try:
        parsed = parse_variant(variant)
    except ValueError:
        return (len(KINDS), ())
    return (KINDS.index(parsed.kind), parsed.version)


def default_directory() -> Path:
    """`envsetup/matrices/data/` in an installed wheel, else the checkout's top-level
    `matrices/`."""
    here = Path(__file__).resolve().parent
    bundled = here / "data"
    if (bundled / FILES[0]).is_file():
        return bundled
    return here.parents[1] / "matrices"


def _build(directory: Path) -> Matrices:
    documents = read_documents(directory)
    nvidia, torch, archs = (documents[name] for name in FILES)
    releases = tuple(_release(row) for row in _rows(torch, "release", "torch.toml"))
    for release in releases:
        try:
            _ = release.version
        except InvalidVersion:
            raise MatricesError(f"torch.toml: {release.torch!r} is not a version") from None
    return Matrices(
        toolkits=tuple(_toolkit(row) for row in _rows(nvidia, "toolkit", "nvidia.toml")),
        minor_compat=tuple(
            _minor_compat(row) for row in _rows(nvidia, "minor_compat", "nvidia.toml")
        ),
        releases=tuple(sorted(releases, key=lambda release: release.version)),
        cuda_archs=tuple(_arch_list(row) for row in _rows(archs, "cuda", "archs.toml")),
        rocm=tuple(_rocm(row) for row in _rows(archs, "rocm", "archs.toml")),
        directory=directory,
        untagged_platforms=tuple(
            untagged_platform(row) for row in _rows(torch, "untagged", "torch.toml")
        ),
    )


@functools.lru_cache(maxsize=8)
def _load_cached(directory: Path) -> Matrices:
    return _build(directory)


def load(directory: str | Path | None = None) -> Matrices:
    """The matrices from `directory` (default: the bundled data), parsed once per process."""
    path = default_directory() if directory is None else Path(directory).resolve()
    return _load_cached(path)
