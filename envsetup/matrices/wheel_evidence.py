"""Read primary evidence from the package registry's wheels and check the matrices against it.

The matrices are compiled from docs and build scripts; the wheels themselves are what users get.
`envsetup matrix verify` reads the registry's PEP 691/503 listing of torch, torchvision and
torchaudio and, from the wheels, `METADATA` (Requires-Python, Requires-Dist), `torch/version.py`
(`__version__ = '2.15.0+cu132'`, `cuda = '13.2'`: PyPI's default variant) and, for chosen
releases, the fatbin headers of `libtorch_cuda.so` (the SASS and PTX the wheel carries).
Fetching them (listings, range reads, the cache) is `envsetup.matrices.registry`'s job.
"""

from __future__ import annotations

import ast
import mmap
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envsetup.matrices import Matrices
from envsetup.matrices.registry import (
    DEFAULT_INDEX,
    EvidenceCache,
    EvidenceError,
    RangeFile,
    WheelFacts,
    _NoRanges,
    project_files,
)
from envsetup.matrices.schema import Release

if TYPE_CHECKING:
    from envsetup.matrices.registry import RegistryFile


COMPANIONS = ("torchvision", "torchaudio")
#: The matrices platform whose PyPI wheel's CUDA code is read for arch lists.
ARCH_PLATFORM = "linux-x86_64"
#: The shared library holding torch's CUDA kernels (libtorch_cuda.so; 1.x: _cu and _cpp halves).
CUDA_LIBRARY_RE = re.compile(r"^torch/lib/libtorch_cuda(_cu|_cpp)?\.so$")


_FATBIN_MAGIC = struct.pack("<IH", 0xBA55ED50, 1)
_FATBIN_PTX, _FATBIN_ELF = 1, 2

CONFIRMED, CONTRADICTED, UNREACHABLE = "confirmed", "contradicted", "unreachable"


def _metadata_member(names: Iterable[str]) -> str:
    for name in names:
        if name.endswith(".dist-info/METADATA") and name.count("/") == 1:
            return name
    raise EvidenceError("the wheel has no *.dist-info/METADATA")


def parse_version_py(text: str) -> dict[str, str]:
    """The string constants of torch/version.py (`__version__`, `cuda`, `hip`, `git_version`)."""
    found = {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        literal = value.value if isinstance(value, ast.Constant) else None
        if isinstance(target, ast.Name) and isinstance(literal, str):
            found[target.id] = literal
    return found


def fatbin_archs(data: bytes | mmap.mmap) -> tuple[dict[int, int], dict[int, int], int]:
    """How many CUDA fatbins in a binary carry SASS (cubins) and PTX for each SM version, and
    how many fatbins there are.

    Walks the fatbin container headers nvcc writes (magic 0xBA55ED50; per entry: kind 1 = PTX,
    2 = ELF, header size, padded payload size, and the SM version at offset 28) rather than
    guessing from strings, which compressed payloads do not expose. `cuobjdump --list-elf`
    reports the same set.
    """
    sass: dict[int, int] = {}
    ptx: dict[int, int] = {}
    fatbins = 0
    start = data.find(_FATBIN_MAGIC)
    while start != -1:
        fatbins += 1
        header_size, fat_size = struct.unpack_from("<HQ", data, start + 6)
        entry, end = start + header_size, start + header_size + fat_size
        seen: set[tuple[int, int]] = set()
        while entry + 32 <= min(end, len(data)):
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            seen.add((kind, struct.unpack_from("<I", data, entry + 28)[0]))
            if entry_header == 0:
                break
            entry += entry_header + payload
        for kind, arch in seen:
            counts = sass if kind == _FATBIN_ELF else ptx if kind == _FATBIN_PTX else None
            if counts is not None:
                counts[arch] = counts.get(arch, 0) + 1
        start = data.find(_FATBIN_MAGIC, max(end, start + 1))
    return sass, ptx, fatbins


def _split(counts: Mapping[int, int], prefix: str) -> tuple[list[str], list[str]]:
    """Archs in at least half of the fatbins that carry any (the build's arch list: what
    `torch.cuda.get_arch_list()` reports) and the rest (a few kernels built for more archs)."""
    top = max(counts.values(), default=0)
    general = [f"{prefix}_{a}" for a in sorted(counts) if counts[a] * 2 >= top]
    partial = [f"{prefix}_{a}" for a in sorted(counts) if counts[a] * 2 < top]
    return general, partial


def _read_archs(archive: zipfile.ZipFile, facts: WheelFacts, scratch: Path) -> None:
    libraries = [n for n in archive.namelist() if CUDA_LIBRARY_RE.match(n)]
    sass: dict[int, int] = {}
    ptx: dict[int, int] = {}
    for member in libraries:
        with tempfile.TemporaryFile(dir=scratch) as out:
            with archive.open(member) as source:
                shutil.copyfileobj(source, out, 1 << 24)
            out.flush()
            with mmap.mmap(out.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                found_sass, found_ptx, _ = fatbin_archs(mapped)
        for counts, found in ((sass, found_sass), (ptx, found_ptx)):
            for arch, count in found.items():
                counts[arch] = counts.get(arch, 0) + count
    facts.sass, facts.sass_partial = _split(sass, "sm")
    facts.ptx, facts.ptx_partial = _split(ptx, "compute")
    facts.cuda_library = ", ".join(libraries) or "no libtorch_cuda*.so"


def read_wheel(
    file: RegistryFile, cache: EvidenceCache, *, archs: bool = False, timeout: float = 120.0
) -> WheelFacts:
    """METADATA and torch/version.py of one wheel (and its CUDA archs when `archs`), by range
    requests where the server supports them, else from a full download in the cache."""
    kind = "archs" if archs else "meta"
    cached = cache.load(file.wheel.filename, kind)
    if cached is not None:
        return cached
    facts = WheelFacts()
    try:
        handle: Any = RangeFile(file.url, timeout)
        facts.read_by = "range"
    except _NoRanges:
        handle = cache.download(file.url, file.wheel.filename, timeout).open("rb")
        facts.read_by = "download"
    try:
        with handle, zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
            metadata = archive.read(_metadata_member(names)).decode("utf-8", errors="replace")
            headers = HeaderParser().parsestr(metadata)
            facts.requires_python = headers.get("Requires-Python")
            facts.requires_dist = [str(v) for v in headers.get_all("Requires-Dist") or []]
            if "torch/version.py" in names:
                text = archive.read("torch/version.py").decode("utf-8", errors="replace")
                facts.version_py = parse_version_py(text)
            if archs:
                scratch = cache.root / "scratch"
                scratch.mkdir(parents=True, exist_ok=True)
                _read_archs(archive, facts, scratch)
    except (zipfile.BadZipFile, OSError, struct.error) as error:
        raise EvidenceError(f"could not read {file.wheel.filename}: {error}") from None
    cache.store(file.wheel.filename, kind, facts)
    return facts


@dataclass(frozen=True)
class Check:
    """One field of one release: what the matrices claim, what the evidence says, and where."""

    torch: str
    field: str  # "python", "requires_python", "pypi_default.linux-x86_64", "torchvision", ...
    status: str  # CONFIRMED, CONTRADICTED, UNREACHABLE
    claimed: str
    found: str
    evidence: str  # "torch-2.15.0-cp311-...whl METADATA Requires-Python: >=3.11"


@dataclass
class Report:
    """Every check, plus the registry releases the matrices lack."""

    checks: list[Check] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # registry releases the matrices lack
    arch_releases: list[str] = field(default_factory=list)  # releases whose CUDA code was read

    def counts(self) -> dict[str, int]:
        result = {CONFIRMED: 0, CONTRADICTED: 0, UNREACHABLE: 0}
        for check in self.checks:
            result[check.status] += 1
        return result

    def releases(self) -> dict[str, list[Check]]:
        grouped: dict[str, list[Check]] = {}
        for check in self.checks:
            grouped.setdefault(check.torch, []).append(check)
        return grouped


def _python_key(tag: str) -> tuple[int, bool]:
    return int(tag.rstrip("t").split(".")[1]), tag.endswith("t")


def _pythons_text(tags: Iterable[str]) -> str:
    return ", ".join(sorted(set(tags), key=_python_key)) or "-"


def by_release(files: Iterable[RegistryFile]) -> dict[Version, list[RegistryFile]]:
    """Final releases only; pre-releases and dev builds are not matrix material."""
    grouped: dict[Version, list[RegistryFile]] = {}
    for file in files:
        version = file.wheel.version
        if not (version.is_prerelease or version.is_devrelease or version.is_postrelease):
            grouped.setdefault(version, []).append(file)
    return dict(sorted(grouped.items()))


def _representative(files: Sequence[RegistryFile], platform: str) -> RegistryFile | None:
    """The wheel of `platform` with the newest non-free-threaded Python (one is as good as
    another for METADATA; the newest CPython is the most likely to be kept on a mirror)."""
    candidates = [f for f in files if f.wheel.platform == platform and f.wheel.pythons]
    regular = [f for f in candidates if not f.wheel.pythons[0].endswith("t")] or candidates
    return max(regular, key=lambda f: _python_key(f.wheel.pythons[0]), default=None)


def _torch_pin(requires_dist: Iterable[str]) -> str | None:
    """The torch requirement of a companion wheel ("==2.5.1", ">=2.14.0"), without markers'
    extras; None when it names no torch."""
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name == "torch" and not requirement.marker:
            return str(requirement.specifier)
    return None


@dataclass
class Verifier:
    """Collects the checks of every release; `read` fetches a wheel's facts (tests inject)."""

    data: Matrices
    torch_files: dict[Version, list[RegistryFile]]
    companion_files: dict[str, dict[Version, list[RegistryFile]]]
    read: Callable[[RegistryFile, bool], WheelFacts]
    report: Report = field(default_factory=Report)
    pins: dict[str, dict[Version, str | None]] = field(default_factory=dict)

    def add(
        self,
        release: Release,
        name: str,
        claimed: str,
        found: str | None,
        evidence: str,
        *,
        agrees: bool | None = None,
    ) -> None:
        if found is None:
            status = UNREACHABLE
        elif agrees is None:
            status = CONFIRMED if claimed == found else CONTRADICTED
        else:
            status = CONFIRMED if agrees else CONTRADICTED
        self.report.checks.append(
            Check(release.torch, name, status, claimed, found or "-", evidence)
        )

    def _facts(self, file: RegistryFile, archs: bool = False) -> WheelFacts | None:
        try:
            return self.read(file, archs)
        except EvidenceError:
            return None

    def verify(self, arch_releases: Iterable[str] = ()) -> Report:
        known = {release.version for release in self.data.releases}
        first = self.data.releases[0].version
        self.report.missing = [str(v) for v in self.torch_files if v >= first and v not in known]
        wanted = set(arch_releases)
        for release in self.data.releases:
            files = self.torch_files.get(release.version, [])
            if not files:
                for name in ("python", "torchvision", "torchaudio"):
                    self.add(release, name, "listed", None, "no wheel on the registry")
                continue
            self._pythons(release, files)
            self._date(release, files)
            self._metadata(release, files)
            self._companions(release)
            if release.torch in wanted:
                self._archs(release, files)
        return self.report

    def _pythons(self, release: Release, files: Sequence[RegistryFile]) -> None:
        """Python tags x platforms from the file listing. A tag the registry has and the
        matrices lack is a contradiction; one the matrices list and the registry lacks may live
        on download.pytorch.org only, so it is unreachable from here (the Requires-Python check
        catches the Pythons no wheel can serve)."""
        seen: dict[str, set[str]] = {}
        for file in files:
            if file.wheel.platform is not None:
                seen.setdefault(file.wheel.platform, set()).update(file.wheel.pythons)
        listing = f"registry listing of torch {release.torch} ({len(files)} wheels)"
        for platform in sorted(set(seen) | set(release.variants)):
            claimed = set(release.pythons(platform))
            found = seen.get(platform, set())
            extra, absent = found - claimed, claimed - found
            status = CONTRADICTED if extra else UNREACHABLE if absent else CONFIRMED
            evidence = listing
            if extra:
                evidence += f"; wheels the matrices lack: {_pythons_text(extra)}"
            if absent:
                evidence += f"; no registry wheel for {_pythons_text(absent)}"
            self.report.checks.append(
                Check(
                    release.torch,
                    f"python.{platform}",
                    status,
                    _pythons_text(claimed),
                    _pythons_text(found),
                    evidence,
                )
            )

    def _date(self, release: Release, files: Sequence[RegistryFile]) -> None:
        """The release date: the day of the first upload (PEP 700), to the precision the
        matrices give ("2026-01" compares the month)."""
        times = sorted(f.upload_time for f in files if f.upload_time)
        if not times:
            self.add(release, "date", release.date, None, "the listing gives no upload-time")
            return
        first = next(f for f in files if f.upload_time == times[0])
        found = times[0][: len(release.date)]
        evidence = f"{first.wheel.filename} upload-time {times[0]}"
        self.add(release, "date", release.date, found, evidence)

    def _metadata(self, release: Release, files: Sequence[RegistryFile]) -> None:
        """Requires-Python and PyPI's default variant per platform, from the wheels."""
        for platform in sorted(release.pypi_default):
            file = _representative(files, platform)
            claimed = release.pypi_default[platform]
            if file is None:
                self.add(release, f"pypi_default.{platform}", claimed, None, "no wheel listed")
                continue
            facts = self._facts(file)
            if facts is None:
                self.add(release, f"pypi_default.{platform}", claimed, None, file.wheel.filename)
                continue
            if platform == ARCH_PLATFORM:
                lowest = min(release.python, key=_python_key)
                requires = facts.requires_python or ""
                allowed = _lowest_allowed(requires) if requires else None
                self.add(
                    release,
                    "requires_python",
                    f"lowest Python {lowest}",
                    requires or None,
                    f"{file.wheel.filename} METADATA Requires-Python: {requires}",
                    agrees=allowed is not None and _python_key(allowed) <= _python_key(lowest),
                )
            local = facts.version_py.get("__version__", "")
            found = local.partition("+")[2] or _variant_of(facts.version_py)
            self.add(
                release,
                f"pypi_default.{platform}",
                claimed,
                found,
                f"{file.wheel.filename} torch/version.py __version__ = {local!r}, "
                f"cuda = {facts.version_py.get('cuda', 'None')!r}",
            )

    def _companions(self, release: Release) -> None:
        """The companion wheel's Requires-Dist names the torch it pairs with: an exact pin
        (`torch==2.5.1`) first; else a floor on the same minor line (`torch>=2.14.0` pairs with
        2.14.1, not with 2.15.0: it was built against 2.14); else no pair."""
        for name in COMPANIONS:
            claimed = getattr(release, name) or "none"
            pairs = self._pairs(name)
            if not pairs:
                self.add(release, name, claimed, None, f"no {name} wheels read")
                continue
            exact = [str(v) for v, pin in pairs.items() if _pins(pin, release.version)]
            floor = [str(v) for v, pin in pairs.items() if _floor_pairs(pin, release.version)]
            silent = [str(v) for v, pin in pairs.items() if pin is None]
            evidence = f"{name} METADATA Requires-Dist torch: " + (
                ", ".join(f"{name}-{v} {pairs[Version(v)]}" for v in exact + floor)
                or f"no {name} release names torch {release.torch}"
            )
            if exact:
                self.add(release, name, claimed, exact[-1], evidence)
            elif claimed in floor:
                self.add(release, name, claimed, claimed, evidence)
            elif claimed in silent:
                evidence += f"; {name}-{claimed} names no torch requirement"
                self.add(release, name, claimed, None, evidence)
            else:
                self.add(release, name, claimed, floor[-1] if floor else "none", evidence)

    def _pairs(self, name: str) -> dict[Version, str | None]:
        """Companion release -> its torch requirement, read once per companion."""
        if name not in self.pins:
            pins: dict[Version, str | None] = {}
            for version, files in self.companion_files.get(name, {}).items():
                file = _representative(files, ARCH_PLATFORM) or files[0]
                facts = self._facts(file)
                if facts is not None:
                    pins[version] = _torch_pin(facts.requires_dist)
            self.pins[name] = pins
        return self.pins[name]

    def _archs(self, release: Release, files: Sequence[RegistryFile]) -> None:
        """The SASS and PTX in the PyPI Linux x86_64 wheel's libtorch_cuda.so, against the
        archs.toml row of the variant that wheel turns out to be."""
        file = _representative(files, ARCH_PLATFORM)
        if file is None:
            return
        facts = self._facts(file, archs=True)
        if facts is None or facts.sass is None:
            self.add(release, "archs", "listed", None, f"{file.wheel.filename} not readable")
            return
        variant = facts.version_py.get("__version__", "").partition("+")[2]
        variant = variant or _variant_of(facts.version_py)
        row = self.data.arch_list(release.torch, variant, ARCH_PLATFORM)
        if row is None:
            return
        self.report.arch_releases.append(release.torch)
        where = f"{file.wheel.filename} {facts.cuda_library} fatbin"
        sass = " ".join(facts.sass)
        if facts.sass_partial:
            where += f" (a few kernels also: {' '.join(facts.sass_partial)})"
        claimed = " ".join(f"sm_{cc.replace('.', '')}" for cc in row.sm)
        self.add(release, f"archs.{variant}.sm", claimed, sass, f"{where} ELF entries: {sass}")
        claimed_ptx = f"compute_{row.ptx.replace('.', '')}" if row.ptx else "-"
        ptx = " ".join(facts.ptx or []) or "-"
        self.add(release, f"archs.{variant}.ptx", claimed_ptx, ptx, f"{where} PTX entries: {ptx}")


def _pins(pin: str | None, torch: Version) -> bool:
    """`==2.5.1` (or `==2.0.0+cu117`) names exactly this torch release."""
    if not pin or not pin.startswith("==") or "," in pin:
        return False
    try:
        return Version(pin[2:]).public == torch.public
    except ValueError:
        return False


def _floor_pairs(pin: str | None, torch: Version) -> bool:
    """`>=2.14.0` admits 2.14.1 on its own minor line (a later minor is not what it was built
    against)."""
    if not pin or not pin.startswith(">=") or "," in pin:
        return False
    floor = Version(pin[2:])
    return floor.release[:2] == torch.release[:2] and torch in SpecifierSet(pin)


def _lowest_allowed(requires_python: str) -> str | None:
    """The lowest 3.X a Requires-Python admits (">=3.11" -> "3.11")."""
    specifier = SpecifierSet(requires_python)
    for minor in range(6, 30):
        if f"3.{minor}.99" in specifier or f"3.{minor}.0" in specifier:
            return f"3.{minor}"
    return None


def _variant_of(version_py: Mapping[str, str]) -> str:
    """The variant of a wheel whose __version__ has no local label (PyPI's own builds)."""
    if version_py.get("cuda") not in (None, "None", ""):
        return "cu" + version_py["cuda"].replace(".", "")
    if version_py.get("hip") not in (None, "None", ""):
        return "rocm" + version_py["hip"]
    return "cpu"


def collect(
    index: str, timeout: float = 60.0
) -> tuple[dict[Version, list[RegistryFile]], dict[str, dict[Version, list[RegistryFile]]]]:
    """The registry's torch and companion files, grouped by release."""
    torch = by_release(project_files(index, "torch", timeout))
    if not torch:
        raise EvidenceError(
            f"the registry at {index} lists no torch wheels",
            hint="pass --index with the simple index root of a registry that serves torch",
        )
    companions = {name: by_release(project_files(index, name, timeout)) for name in COMPANIONS}
    return torch, companions


def verify(
    data: Matrices,
    index: str = DEFAULT_INDEX,
    *,
    archs: str | None = None,
    cache: EvidenceCache | None = None,
    timeout: float = 120.0,
) -> Report:
    """Check every release of `data` against the registry; read CUDA code for the releases the
    PEP 440 specifier `archs` matches ("all" for every one, None for none: it is the heavy part,
    a few hundred MB per release)."""
    store = cache or EvidenceCache()
    torch, companions = collect(index, timeout)
    chosen = [
        r.torch
        for r in data.releases
        if archs and (archs == "all" or r.version in SpecifierSet(archs))
    ]

    def read(file: RegistryFile, with_archs: bool) -> WheelFacts:
        return read_wheel(file, store, archs=with_archs, timeout=timeout)

    return Verifier(data, torch, companions, read).verify(chosen)


def report_json(report: Report) -> dict[str, Any]:
    return {
        "counts": report.counts(),
        "missing_releases": report.missing,
        "arch_releases": report.arch_releases,
        "checks": [check.__dict__ for check in report.checks],
    }


def report_text(report: Report, *, verbose: bool = False) -> Iterator[str]:
    """One line per release (counts), each contradiction and blind spot in full."""
    for torch, checks in report.releases().items():
        counts = Report(checks).counts()
        yield (
            f"torch {torch}: {counts[CONFIRMED]} confirmed, {counts[CONTRADICTED]} contradicted, "
            f"{counts[UNREACHABLE]} unreachable"
        )
        for check in checks:
            if verbose or check.status != CONFIRMED:
                yield (
                    f"  {check.status:<12} {check.field}: matrices {check.claimed!r}, "
                    f"wheels {check.found!r} [{check.evidence}]"
                )
    for version in report.missing:
        yield f"torch {version}: on the registry, missing from matrices/torch.toml"
    totals = report.counts()
    yield (
        f"Total: {totals[CONFIRMED]} confirmed, {totals[CONTRADICTED]} contradicted, "
        f"{totals[UNREACHABLE]} unreachable; {len(report.missing)} releases missing; "
        f"arch lists read for {len(report.arch_releases)} releases"
    )
