"""Guard the data files themselves: keys, types, order, duplicates, names, companions, coverage.

These tests read the raw TOML (file order matters: rows must be sorted as written) and the loaded
`Matrices` (cross-file coverage). A failure names the row so the fix is obvious.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envsetup import matrices
from envsetup.matrices import PLATFORMS, VARIANT_RE, Matrices, _toml, schema, variant_cuda

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DIRECTORY = Path(__file__).resolve().parents[3] / "matrices"

TOOLKIT_KEYS = {"cuda", "update", "release", "linux", "windows", "branch", "source"}
TOOLKIT_KEYS |= {"unconfirmed", "notes"}
MINOR_KEYS = {"cuda_major", "linux", "windows", "source", "unconfirmed", "notes"}
RELEASE_REQUIRED = {"torch", "date", "python", "torchvision", "torchaudio", "sources"}
RELEASE_REQUIRED |= {"variants", "pypi_default"}
RELEASE_OPTIONAL = {"python_unconfirmed", "python_platforms", "python_variants", "confirmed"}
RELEASE_OPTIONAL |= {"unconfirmed", "notes", "evidence"}
CUDA_ARCH_KEYS = {"torch", "variant", "platforms", "sm", "ptx", "confirmed", "source", "notes"}
ROCM_KEYS = {"variant", "gfx", "confirmed", "source", "notes"}
RELEASE_FIELDS = {"date", "python", "python_platforms", "python_variants", "variants"}
RELEASE_FIELDS |= {"pypi_default"}
RELEASE_FIELDS |= {"torchvision", "torchaudio"}

PYTHON_RE = re.compile(r"^3\.(\d{1,2})(t?)$")
DATE_RE = re.compile(r"^20\d\d-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")
DRIVER_RE = re.compile(r"^\d{3}(\.\d{1,3}){0,2}$")
CC_RE = re.compile(r"^\d{1,2}\.\d$")


def raw(name: str) -> dict[str, Any]:
    with (DIRECTORY / name).open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def data() -> Matrices:
    return matrices.load(DIRECTORY)


def python_key(tag: str) -> tuple[int, bool]:
    match = PYTHON_RE.match(tag)
    assert match, tag
    return int(match.group(1)), bool(match.group(2))


def cc_key(cc: str) -> tuple[int, int]:
    major, minor = cc.split(".")
    return int(major), int(minor)


# --- every file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _toml.FILES)
def test_file_declares_schema_1_and_only_known_tables(name: str) -> None:
    document = raw(name)
    assert document.get("schema") == 1
    tables = {"nvidia.toml": {"toolkit", "minor_compat"}, "torch.toml": {"release", "untagged"}}
    tables["archs.toml"] = {"cuda", "rocm"}
    assert set(document) - {"schema"} == tables[name]


def every_source(document: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for table, rows in document.items():
        if table == "schema":
            continue
        for n, row in enumerate(rows):
            for url in row.get("sources", [row.get("source")]):
                found.append((f"[[{table}]] #{n + 1}", url))
    return found


@pytest.mark.parametrize("name", _toml.FILES)
def test_every_row_cites_an_https_source(name: str) -> None:
    for where, url in every_source(raw(name)):
        assert isinstance(url, str), f"{name} {where}: no source"
        assert url.startswith("https://"), f"{name} {where}: source {url!r} is not an https URL"


def test_untagged_rows_name_known_platforms_once() -> None:
    rows = raw("torch.toml")["untagged"]
    for n, row in enumerate(rows):
        where = f"torch.toml [[untagged]] #{n + 1}"
        assert set(row) <= {"platform", "source", "notes"}, where
        assert {"platform", "source"} <= set(row), where
        assert row["platform"] in PLATFORMS, f"{where}: {row['platform']!r}"
    platforms = [row["platform"] for row in rows]
    assert len(platforms) == len(set(platforms))


def test_untagged_rows_load_in_file_order(data: Matrices) -> None:
    assert data.untagged_platforms == tuple(r["platform"] for r in raw("torch.toml")["untagged"])


# --- nvidia.toml ----------------------------------------------------------------------------------


def test_toolkit_rows_have_known_keys_and_valid_drivers() -> None:
    for n, row in enumerate(raw("nvidia.toml")["toolkit"]):
        where = f"toolkit #{n + 1} ({row.get('release')})"
        assert set(row) <= TOOLKIT_KEYS, where
        assert {"cuda", "update", "release", "source"} <= set(row), where
        assert re.match(r"^\d{1,2}\.\d$", row["cuda"]), where
        assert isinstance(row["update"], int) and row["update"] >= 0, where
        for system in ("linux", "windows"):
            if system in row:
                assert DRIVER_RE.match(row[system]), f"{where}: {system} = {row[system]!r}"
        assert set(row.get("unconfirmed", [])) <= {"linux", "windows"}, where


def test_toolkit_rows_ascend_without_duplicates() -> None:
    keys = [(Version(r["cuda"]), r["update"]) for r in raw("nvidia.toml")["toolkit"]]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_toolkit_drivers_never_decrease_with_the_toolkit() -> None:
    """A newer toolkit never needs an older driver: catches transposed digits."""
    for system in ("linux", "windows"):
        drivers = [Version(r[system]) for r in raw("nvidia.toml")["toolkit"] if system in r]
        assert drivers == sorted(drivers), system


def test_every_cuda_minor_has_a_ga_row() -> None:
    rows = raw("nvidia.toml")["toolkit"]
    assert {r["cuda"] for r in rows} == {r["cuda"] for r in rows if r["update"] == 0}


def test_minor_compat_rows() -> None:
    rows = raw("nvidia.toml")["minor_compat"]
    assert [r["cuda_major"] for r in rows] == [11, 12, 13]
    for row in rows:
        assert set(row) <= MINOR_KEYS
        for system in ("linux", "windows"):
            assert DRIVER_RE.match(row[system]), row


# --- torch.toml -----------------------------------------------------------------------------------


def test_release_rows_have_known_keys_and_types() -> None:
    for row in raw("torch.toml")["release"]:
        where = row.get("torch")
        assert set(row) >= RELEASE_REQUIRED, where
        assert set(row) <= RELEASE_REQUIRED | RELEASE_OPTIONAL, where
        assert DATE_RE.match(row["date"]), where
        assert isinstance(row["sources"], list) and row["sources"], where
        assert str(Version(row["torch"])) == row["torch"], where
        assert not Version(row["torch"]).is_prerelease, where


def test_releases_ascend_in_the_file_without_duplicates() -> None:
    versions = [Version(row["torch"]) for row in raw("torch.toml")["release"]]
    assert versions == sorted(versions)
    duplicates = [v for v, count in Counter(versions).items() if count > 1]
    assert not duplicates


def test_releases_cover_every_minor_from_1_12_to_the_newest(data: Matrices) -> None:
    # the newest release is the data's: confirming or adding one changes torch.toml, not this
    versions = [r.torch for r in data.releases]
    assert versions[0] == "1.12.0"
    newest = data.releases[-1].version.release[:2]
    assert newest[0] == 2
    minors = {r.version.release[:2] for r in data.releases}
    expected = {(1, 12), (1, 13)} | {(2, minor) for minor in range(newest[1] + 1)}
    assert minors == expected


def test_release_dates_ascend(data: Matrices) -> None:
    dates = [r.date for r in data.releases]
    assert dates == sorted(dates)


def test_python_tags_are_valid_sorted_and_unique(data: Matrices) -> None:
    for release in data.releases:
        for tags in (release.python, release.python_unconfirmed):
            assert list(tags) == sorted(tags, key=python_key), release.torch
            assert len(set(tags)) == len(tags), release.torch
        assert not set(release.python) & set(release.python_unconfirmed), release.torch
        for tag, platforms in release.python_platforms.items():
            assert tag in release.python, f"{release.torch}: python_platforms {tag}"
            assert set(platforms) <= {p for p, v in release.variants.items() if v}
        published = {v for variants in release.variants.values() for v in variants}
        for tag, variants in release.python_variants.items():
            assert tag in release.python, f"{release.torch}: python_variants {tag}"
            assert variants and set(variants) <= published, f"{release.torch}: {tag}"


def test_variant_names_and_platforms_are_known(data: Matrices) -> None:
    for release in data.releases:
        assert set(release.variants) <= set(PLATFORMS), release.torch
        for platform, variants in release.variants.items():
            where = f"{release.torch} {platform}"
            assert variants, f"{where}: an empty list (omit the platform instead)"
            assert variants[0] == "cpu", f"{where}: every platform has a cpu build"
            assert list(variants) == sorted(variants, key=matrices.variant_sort_key), where
            assert len(set(variants)) == len(variants), where
            for variant in variants:
                assert VARIANT_RE.match(variant), f"{where}: {variant!r}"
            if platform.startswith("macos"):
                assert variants == ("cpu",), where
            if not platform.startswith("linux"):
                assert not [v for v in variants if v.startswith("rocm")], where
            if platform in ("linux-aarch64", "macos-arm64", "macos-x86_64"):
                assert "xpu" not in variants, where


def test_pypi_default_is_a_published_variant_per_platform(data: Matrices) -> None:
    for release in data.releases:
        assert set(release.pypi_default) == set(release.variants), release.torch
        for platform, default in release.pypi_default.items():
            assert default in release.variants[platform], f"{release.torch} {platform}"
        assert release.pypi_default["windows-amd64"] == "cpu"
        assert release.pypi_default["macos-arm64"] == "cpu"


def test_macos_x86_64_ends_with_2_2_and_arm64_only_afterwards(data: Matrices) -> None:
    for release in data.releases:
        has_intel_mac = "macos-x86_64" in release.variants
        assert has_intel_mac == (release.version < Version("2.3")), release.torch
        assert "macos-arm64" in release.variants


COMPANION_RE = re.compile(r"^(none|\d+\.\d+\.\d+)$")


def test_companions_are_versions_or_none_and_never_go_backwards() -> None:
    """Companions are data (read from each companion wheel's Requires-Dist), not a formula:
    a version or "none". A later torch never pairs with an older companion."""
    rows = raw("torch.toml")["release"]
    for name in ("torchvision", "torchaudio"):
        paired = [(row["torch"], row[name]) for row in rows]
        for torch, value in paired:
            assert COMPANION_RE.match(value), f"{torch}: {name} = {value!r}"
        versions = [Version(value) for _, value in paired if value != "none"]
        assert versions == sorted(versions), name


def test_torchaudio_stops_at_2_11(data: Matrices) -> None:
    with_audio = [r.torch for r in data.releases if r.torchaudio is not None]
    assert with_audio[-1] == "2.11.0"
    assert all(r.torchaudio is None for r in data.releases if r.version > Version("2.11.0"))


def test_evidence_names_a_wheel_field_and_value() -> None:
    """`evidence` lines are what `envsetup matrix verify` read: the file, the field, the value."""
    for row in raw("torch.toml")["release"]:
        for line in row.get("evidence", []):
            assert re.match(r"^(torch|torchvision|torchaudio)[-\s(]", line), (row["torch"], line)
            assert ": " in line, f"{row['torch']}: {line!r} names no value"


def test_unconfirmed_names_real_fields(data: Matrices) -> None:
    for release in data.releases:
        for name in release.unconfirmed:
            field, _, platform = name.partition(".")
            assert field in RELEASE_FIELDS, f"{release.torch}: {name}"
            if platform:
                assert field == "variants" and platform in release.variants, release.torch
        if not release.confirmed:
            assert release.unconfirmed, f"{release.torch}: confirmed = false says nothing"


def test_2_15_holds_what_its_wheels_say(data: Matrices) -> None:
    """Read from the registry: Requires-Python >=3.11 with cp315/cp315t wheels, no torchvision
    built for it; only the download.pytorch.org variants stay unconfirmed."""
    release = data.release("2.15.0")
    assert release is not None
    assert release.python[0] == "3.11" and {"3.15", "3.15t"} <= set(release.python)
    assert release.torchvision is None and release.torchaudio is None
    assert release.unconfirmed == ("variants",)


# --- archs.toml -----------------------------------------------------------------------------------


def test_cuda_arch_rows() -> None:
    for n, row in enumerate(raw("archs.toml")["cuda"]):
        where = f"cuda #{n + 1} ({row.get('torch')} {row.get('variant')})"
        assert set(row) <= CUDA_ARCH_KEYS, where
        SpecifierSet(row["torch"])  # raises on a malformed specifier
        assert variant_cuda(row["variant"]), where
        assert row["platforms"] and set(row["platforms"]) <= set(PLATFORMS), where
        assert not [p for p in row["platforms"] if p.startswith("macos")], where
        assert all(CC_RE.match(cc) for cc in row["sm"]), where
        assert row["sm"] == sorted(row["sm"], key=cc_key), where
        assert len(set(row["sm"])) == len(row["sm"]), where
        if "ptx" in row:
            assert CC_RE.match(row["ptx"]), where
            assert row["ptx"] in row["sm"], f"{where}: PTX is emitted for a listed arch (X.Y+PTX)"
        if "confirmed" in row:
            assert row["confirmed"] is False and row.get("notes"), where
        if row["variant"].startswith("cu13"):
            assert min(cc_key(cc) for cc in row["sm"]) >= (7, 5), f"{where}: CUDA 13 needs >= 7.5"


def test_rocm_rows() -> None:
    rows = raw("archs.toml")["rocm"]
    names = [row["variant"] for row in rows]
    assert len(set(names)) == len(names)
    assert names == sorted(names, key=matrices.variant_sort_key)
    for row in rows:
        assert set(row) <= ROCM_KEYS, row["variant"]
        assert VARIANT_RE.match(row["variant"]) and row["variant"].startswith("rocm")
        assert all(re.match(r"^gfx[0-9a-f]{3,4}$", gfx) for gfx in row["gfx"]), row["variant"]
        if not row["gfx"]:
            assert row.get("confirmed") is False, f"{row['variant']}: empty gfx must be unconfirmed"


# --- across files ---------------------------------------------------------------------------------


def published(data: Matrices) -> list[tuple[schema.Release, str, str]]:
    return [
        (release, platform, variant)
        for release in data.releases
        for platform, variants in release.variants.items()
        for variant in variants
    ]


def test_every_cuda_variant_has_a_toolkit_row(data: Matrices) -> None:
    known = {t.cuda for t in data.toolkits}
    for release, platform, variant in published(data):
        cuda = variant_cuda(variant)
        assert cuda is None or cuda in known, f"{release.torch} {platform} {variant}"


def test_every_cuda_wheel_has_exactly_one_arch_row(data: Matrices) -> None:
    for release, platform, variant in published(data):
        if variant_cuda(variant) is None:
            continue
        matching = [
            row
            for row in data.cuda_archs
            if row.variant == variant
            and platform in row.platforms
            and release.version in row.specifier
        ]
        assert len(matching) == 1, f"{release.torch} {platform} {variant}: {len(matching)} rows"
        if not release.confirmed:
            assert not matching[0].confirmed, f"{release.torch}: arch row claims more"


def test_every_arch_row_is_used(data: Matrices) -> None:
    wheels = {(r.version, p, v) for r, p, v in published(data)}
    for row in data.cuda_archs:
        used = [
            (version, platform)
            for version, platform, variant in wheels
            if variant == row.variant and platform in row.platforms and version in row.specifier
        ]
        assert used, f"archs.toml row {row.torch} {row.variant} {row.platforms} covers no wheel"


def test_every_rocm_variant_has_a_gfx_row(data: Matrices) -> None:
    rows = {row.variant for row in data.rocm}
    used = {v for _, _, v in published(data) if v.startswith("rocm")}
    assert used <= rows
    assert rows <= used, f"gfx rows for variants no release publishes: {rows - used}"


# --- packaging ------------------------------------------------------------------------------------


def test_the_wheel_ships_the_data_and_loads_it_from_site_packages(tmp_path: Path) -> None:
    """pyproject force-includes matrices/ as envsetup/matrices/: an installed envsetup must find
    it there (no checkout around) and `envsetup.matrices` must stay the module, not the folder."""
    builders = pytest.importorskip("hatchling.builders.wheel")
    [wheel] = builders.WheelBuilder(str(DIRECTORY.parent)).build(
        directory=str(tmp_path / "dist"), versions=["standard"]
    )
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    assert {f"envsetup/matrices/data/{name}" for name in _toml.FILES} <= names
    assert "envsetup/matrices/__init__.py" in names
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import envsetup.matrices as m; "
        "print(m.__file__); print(m.default_directory()); print(len(m.load().releases))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        env={**os.environ, "ENVSETUP_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        check=True,
    )
    module, directory, count = result.stdout.split()
    assert Path(module) == site / "envsetup" / "matrices" / "__init__.py"
    assert Path(directory) == site / "envsetup" / "matrices" / "data"
    assert int(count) == len(matrices.load(DIRECTORY).releases)
