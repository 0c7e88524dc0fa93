"""Load the compatibility knowledge in `matrices/*.toml` into frozen dataclasses.

Every fact lives once, in the data files, with its source; this module only reads and indexes it.
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
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from envsetup.errors import EnvsetupError
from envsetup.matrices import user_cache
from envsetup.matrices.user_cache import cache_directory
from envsetup.model.variants import KINDS, parse_variant, version_tuple

try:
    from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib's OpenSSL import
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

#: Platform keys used throughout the matrices (`Platform.key`).
PLATFORMS = ("linux-x86_64", "linux-aarch64", "windows-amd64", "macos-arm64", "macos-x86_64")

#: Data files, in load order.
FILES = ("nvidia.toml", "torch.toml", "archs.toml")
#: Part of every cache key: bump it when the cached layout changes, and old entries stop matching.
_CACHE_FORMAT = 2

#: A variant name as it appears in index URLs and local version labels.
VARIANT_RE = re.compile(r"^(cpu|xpu|cu\d{2,3}|rocm\d+\.\d+(\.\d+)?)$")
_CUDA_VARIANT_RE = re.compile(r"^cu(\d{2,3})$")
#: A Python as the matrices and `Platform.python` spell it: "3.11", "3.13t" (free-threaded).
PYTHON_RE = re.compile(r"^3\.\d{1,2}t?$")
#: The ">=A,<B" range every archs.toml row uses, compared without packaging.specifiers.
_RANGE_RE = re.compile(r"^>=(\d+(?:\.\d+)*),<(\d+(?:\.\d+)*)$")


class MatricesError(EnvsetupError):
    """A data file is missing or malformed: names the file and the row, says how to fix it."""


def variant_cuda(variant: str) -> str | None:
    """The CUDA version "X.Y" a `cuXY[Z]` variant was built with ("cu121" -> "12.1"), else None;
    only the index's own spelling counts here (the schema test holds the data files to it)."""
    return parse_variant(variant).cuda if _CUDA_VARIANT_RE.match(variant) else None


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


@dataclass(frozen=True)
class Matrices:
    """Everything the resolver knows about drivers, releases and wheels, with lookups."""

    toolkits: tuple[Toolkit, ...]
    minor_compat: tuple[MinorCompat, ...]
    releases: tuple[Release, ...]
    cuda_archs: tuple[ArchList, ...]
    rocm: tuple[RocmTargets, ...]
    directory: Path

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


# --- reading -------------------------------------------------------------------------------------


class _Row:
    """Typed access to one TOML table, with errors that name the file and row."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, expected: str) -> MatricesError:
        return MatricesError(
            f"{self.where}: key {key!r} is {self.data.get(key)!r}, expected {expected}",
            hint="fix the data file (schema in matrices/README.md)",
        )

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if key in self.data else None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, "an integer")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def texts(self, key: str, default: tuple[str, ...] | None = ()) -> tuple[str, ...]:
        value = self.data.get(key, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        return tuple(value)

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table")
        return value

    def text_lists(self, key: str) -> dict[str, tuple[str, ...]]:
        sub = _Row(self.table(key), f"{self.where}.{key}")
        return {name: sub.texts(name) for name in sub.data}

    def text_map(self, key: str) -> dict[str, str]:
        sub = _Row(self.table(key), f"{self.where}.{key}")
        return {name: sub.text(name) for name in sub.data}


def _rows(document: Mapping[str, Any], key: str, filename: str) -> list[_Row]:
    items = document.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MatricesError(f"{filename}: [[{key}]] must be an array of tables")
    return [_Row(item, f"{filename} [[{key}]] #{n + 1}") for n, item in enumerate(items)]


def _minimums(row: _Row) -> dict[str, Any]:
    """The fields every driver-minimum row shares (see `_DriverMinimums`)."""
    return {
        "linux": row.opt_text("linux"),
        "windows": row.opt_text("windows"),
        "source": row.text("source"),
        "unconfirmed": row.texts("unconfirmed"),
        "notes": row.text("notes", ""),
    }


def _toolkit(row: _Row) -> Toolkit:
    return Toolkit(
        cuda=row.text("cuda"),
        update=row.integer("update"),
        release=row.text("release"),
        branch=row.opt_text("branch"),
        **_minimums(row),
    )


def _minor_compat(row: _Row) -> MinorCompat:
    return MinorCompat(cuda_major=row.integer("cuda_major"), **_minimums(row))


#: Written in place of a companion version when none pairs with the release.
NONE = "none"


def _release(row: _Row) -> Release:
    vision = row.text("torchvision")
    audio = row.text("torchaudio")
    return Release(
        torch=row.text("torch"),
        date=row.text("date"),
        python=row.texts("python", None),
        variants=row.text_lists("variants"),
        pypi_default=row.text_map("pypi_default"),
        torchvision=None if vision == NONE else vision,
        torchaudio=None if audio == NONE else audio,
        sources=row.texts("sources", None),
        python_unconfirmed=row.texts("python_unconfirmed"),
        python_platforms=row.text_lists("python_platforms"),
        python_variants=row.text_lists("python_variants"),
        confirmed=row.flag("confirmed", True),
        unconfirmed=row.texts("unconfirmed"),
        notes=row.text("notes", ""),
    )


def _arch_list(row: _Row) -> ArchList:
    return ArchList(
        torch=row.text("torch"),
        variant=row.text("variant"),
        platforms=row.texts("platforms", None),
        sm=row.texts("sm", None),
        ptx=row.opt_text("ptx"),
        source=row.text("source"),
        confirmed=row.flag("confirmed", True),
        notes=row.text("notes", ""),
    )


def _rocm(row: _Row) -> RocmTargets:
    return RocmTargets(
        variant=row.text("variant"),
        gfx=row.texts("gfx", None),
        source=row.text("source"),
        confirmed=row.flag("confirmed", True),
        notes=row.text("notes", ""),
    )


def default_directory() -> Path:
    """`envsetup/matrices/data/` in an installed wheel, else the checkout's top-level
    `matrices/`."""
    here = Path(__file__).resolve().parent
    bundled = here / "data"
    if (bundled / FILES[0]).is_file():
        return bundled
    return here.parents[1] / "matrices"


def _read_sources(directory: Path) -> dict[str, bytes]:
    """The bytes of every data file: hashed for the cache key, then parsed when not cached."""
    sources: dict[str, bytes] = {}
    for name in FILES:
        path = directory / name
        try:
            sources[name] = path.read_bytes()
        except FileNotFoundError:
            raise MatricesError(
                f"compatibility data not found: {path}",
                hint="reinstall envsetup, or point load() at a directory holding "
                + ", ".join(FILES),
            ) from None
    return sources


def _parse(directory: Path, sources: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Parse every data file; a malformed one becomes one clear error."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    documents: dict[str, dict[str, Any]] = {}
    for name, data in sources.items():
        try:
            documents[name] = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise MatricesError(
                f"{directory / name} is not valid TOML: {error}",
                hint="fix the file or restore it from git",
            ) from None
    return documents


def _cache_key(sources: Mapping[str, bytes]) -> str:
    """A digest of the data files' content and the cache format: any edit, even one that keeps
    size and mtime, is a new key. blake2b from `_blake2`, as hashlib itself serves it, because
    importing hashlib loads OpenSSL (~2 ms a start)."""
    digest = blake2b(f"envsetup matrices cache {_CACHE_FORMAT}".encode(), digest_size=20)
    for name, data in sources.items():
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _decode(cached: bytes | None, key: str) -> dict[str, dict[str, Any]] | None:
    """The documents a cache file holds, or None for anything but an entry written for `key`."""
    if cached is None:
        return None
    try:
        payload = json.loads(cached)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    documents = payload.get("documents")
    if not isinstance(documents, dict) or sorted(documents) != sorted(FILES):
        return None
    if not all(isinstance(document, dict) for document in documents.values()):
        return None
    return documents


def read_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """The parsed data files, from the cache when one holds exactly these files' content.

    TOML parsing costs ~8 ms and tomllib's import more, on every `plan`; reading the cache costs
    about 1 ms. The cache is JSON, not marshal: decoding it cannot crash the interpreter or
    allocate more than the file's size, whoever wrote it. It is best effort (`user_cache`).
    """
    sources = _read_sources(directory)
    cache = cache_directory()
    if cache is None:
        return _parse(directory, sources)
    key = _cache_key(sources)
    name = f"matrices-{key}.json"
    documents = _decode(user_cache.read(cache, name), key)
    if documents is None:
        documents = _parse(directory, sources)
        try:
            encoded = json.dumps({"key": key, "documents": documents}, separators=(",", ":"))
        except (TypeError, ValueError):  # a value JSON cannot hold (a TOML date): no cache
            return documents
        user_cache.write(cache, name, encoded.encode("ascii"))
    return documents


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
    )


@functools.lru_cache(maxsize=8)
def _load_cached(directory: Path) -> Matrices:
    return _build(directory)


def load(directory: str | Path | None = None) -> Matrices:
    """The matrices from `directory` (default: the bundled data), parsed once per process."""
    path = default_directory() if directory is None else Path(directory).resolve()
    return _load_cached(path)
