"""The loader and its lookups: what the resolver asks the matrices, answered from the real data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envsetup import matrices
from envsetup.errors import EnvsetupError
from envsetup.matrices import Matrices, _toml, user_cache, variant_cuda, variant_sort_key
from envsetup.matrices.schema import ArchList, MatricesError, arch_name

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "matrices"


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def data() -> Matrices:
    return matrices.load(DATA)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the data files, to break or change."""
    target = tmp_path / "m"
    shutil.copytree(DATA, target)
    return target


# --- drivers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "os", "cuda"),
    [
        ("580.159.04", "linux", "13.0"),  # the H100 sample: R580 stops before 13.1 (590.44.01)
        ("590.44.01", "linux", "13.1"),
        ("595.58.03", "linux", "13.2"),
        ("535.104.05", "linux", "12.2"),
        ("535.54.03", "linux", "12.2"),
        ("535.54.02", "linux", "12.1"),
        ("525.60.13", "linux", "12.0"),
        ("470.82.01", "linux", "11.4"),
        ("450.80.02", "linux", "11.0"),
        ("390.46", "linux", "9.1"),
        ("390.30", "linux", "9.0"),
        ("537.13", "windows", "12.2"),
        ("528.33", "windows", "12.0"),  # 12.1 needs 531.14
        ("472.50", "windows-amd64", "11.4"),  # a platform key works as well as an OS
        ("581.57", "windows", "13.0"),  # 13.1+ print no Windows minimum
    ],
)
def test_max_cuda_for_driver(data: Matrices, driver: str, os: str, cuda: str) -> None:
    assert data.max_cuda_for_driver(driver, os) == cuda


@pytest.mark.parametrize("driver", ["370.28", "not-a-driver", ""])
def test_max_cuda_for_driver_unknown(data: Matrices, driver: str) -> None:
    assert data.max_cuda_for_driver(driver, "linux") is None


def test_minor_compat_floors(data: Matrices) -> None:
    assert data.minor_compat_floor(11, "linux") == "450.80.02"
    assert data.minor_compat_floor(11, "windows") == "452.39"
    assert data.minor_compat_floor(12, "linux-x86_64") == "525.60.13"
    assert data.minor_compat_floor(12, "windows") == "528.33"
    assert data.minor_compat_floor(13, "linux") == "580.65.06"
    assert data.minor_compat_floor(13, "windows") == "580"
    assert data.minor_compat_floor(10, "linux") is None  # no MVC before CUDA 11


def test_minor_compat_rows_say_what_is_unconfirmed(data: Matrices) -> None:
    thirteen = next(row for row in data.minor_compat if row.cuda_major == 13)
    assert not thirteen.confirmed
    assert thirteen.unconfirmed == ("windows",)
    assert "580.88" in thirteen.notes
    twelve = next(row for row in data.minor_compat if row.cuda_major == 12)
    assert twelve.confirmed and "527.41" in twelve.notes


def test_toolkit_driver_is_the_ga_row(data: Matrices) -> None:
    assert data.toolkit_driver("12.2", "linux") == "535.54.03"
    assert data.toolkit_driver("12.0", "windows") == "527.41"
    assert data.toolkit_driver("11.8", "linux") == "520.61.05"
    assert data.toolkit_driver("10.2", "linux") == "440.33"
    assert data.toolkit_driver("13.1", "windows") is None  # not bundled any more: N/A
    assert data.toolkit_driver("12.7", "linux") is None  # never released
    update = data.toolkit("12.2", 2)
    assert update is not None and update.linux == "535.104.05"


# --- releases -------------------------------------------------------------------------------------


def test_releases_ascend_and_look_up(data: Matrices) -> None:
    versions = [release.version for release in data.releases]
    assert versions == sorted(versions)
    release = data.release("2.5.1")
    assert release is not None and release.torch == "2.5.1"
    assert data.release(release.version) is release
    assert data.release("2.5") is data.release("2.5.0")  # PEP 440: 2.5 == 2.5.0
    assert data.release("9.9.9") is None
    assert data.release("not a version") is None


def test_rows_are_hashable_values(data: Matrices) -> None:
    """Callers key dicts and sets by release or arch row; equal rows hash equal."""
    release = data.release("2.5.1")
    assert release is not None
    assert {release: 1}[release] == 1
    copy = matrices._build(DATA).release("2.5.1")
    assert copy == release and hash(copy) == hash(release)
    rows = (*data.cuda_archs, *data.toolkits, *data.rocm)
    assert len(set(rows)) == len(rows)


def test_release_2_5_1(data: Matrices) -> None:
    release = data.release("2.5.1")
    assert release is not None
    assert release.torchvision == "0.20.1"
    assert release.torchaudio == "2.5.1"
    assert release.pypi_default["linux-x86_64"] == "cu124"
    assert release.pypi_default["windows-amd64"] == "cpu"
    assert "cu121" in release.variants["linux-x86_64"]
    assert "xpu" in release.variants["windows-amd64"]
    assert release.confirmed and release.unconfirmed == ("python_variants",)


def test_python_exceptions_per_platform(data: Matrices) -> None:
    release = data.release("2.5.0")
    assert release is not None
    assert release.has_wheel("3.13", "linux-x86_64", "cu124")
    assert not release.has_wheel("3.13", "windows-amd64")
    assert not release.has_wheel("3.13", "linux-aarch64")
    assert release.has_wheel("3.12", "macos-arm64", "cpu")
    assert not release.has_wheel("3.12", "macos-arm64", "cu124")
    old = data.release("1.13.1")  # PyPI: cp311 only as the Linux x86_64 cu117 wheel
    assert old is not None
    assert "3.11" in old.pythons("linux-x86_64") and "3.11" not in old.pythons("macos-arm64")
    assert old.has_wheel("3.11", "linux-x86_64", "cu117")
    assert not old.has_wheel("3.11", "linux-x86_64", "cpu")


def test_python_exceptions_per_variant(data: Matrices) -> None:
    """2.6 built 3.13 for no ROCm variant and 3.13t only for Linux x86_64 CPU/CUDA."""
    release = data.release("2.6.0")
    assert release is not None
    assert release.has_wheel("3.13", "linux-x86_64", "cu126")
    assert not release.has_wheel("3.13", "linux-x86_64", "rocm6.2.4")
    assert release.has_wheel("3.12", "linux-x86_64", "rocm6.2.4")
    assert release.has_wheel("3.13t", "linux-x86_64", "cu124")
    assert not release.has_wheel("3.13t", "linux-x86_64", "xpu")
    assert not release.has_wheel("3.13t", "windows-amd64", "cu124")
    assert not release.has_wheel("3.12", "linux-x86_64", "cu121")  # not published for 2.6
    later = data.release("2.10.0")
    assert later is not None
    assert later.has_wheel("3.14t", "windows-amd64", "cu130")
    assert later.has_wheel("3.13", "linux-x86_64", "rocm7.1")


def test_macos_intel_wheels_end_with_2_2(data: Matrices) -> None:
    last = data.release("2.2.2")
    first_without = data.release("2.3.0")
    assert last is not None and first_without is not None
    assert last.pythons("macos-x86_64")
    assert first_without.pythons("macos-x86_64") == ()
    assert not first_without.has_wheel("3.11", "macos-x86_64")


def test_free_threaded_tags(data: Matrices) -> None:
    release = data.release("2.9.1")
    assert release is not None
    assert {"3.13t", "3.14t"} <= set(release.python)
    newest = data.release("2.13.0")
    assert newest is not None
    assert "3.13t" not in newest.python  # dropped in 2026-05 (test-infra #8065)
    assert "3.15" in newest.python_unconfirmed


def test_companions_and_the_end_of_torchaudio(data: Matrices) -> None:
    first = data.release("2.0.0")
    assert first is not None
    assert (first.torchvision, first.torchaudio) == ("0.15.1", "2.0.1")
    last_audio = data.release("2.11.0")
    assert last_audio is not None and last_audio.torchaudio == "2.11.0"
    after = data.release("2.12.0")
    assert after is not None
    assert after.torchvision == "0.27.0"
    assert after.torchaudio is None


def test_2_15_wheels_are_confirmed_but_not_its_other_indexes(data: Matrices) -> None:
    release = data.release("2.15.0")
    assert release is not None
    assert release.torchvision is None  # no torchvision release pins torch 2.15.0
    assert not release.has_wheel("3.10", "linux-x86_64")
    assert release.has_wheel("3.15t", "linux-x86_64", "cu132")
    assert release.confirmed and release.unconfirmed == ("variants",)


def test_variants_lists_every_name_in_order(data: Matrices) -> None:
    names = data.variants()
    assert names[0] == "cpu" and names[-1] == "xpu"
    assert names.index("cu118") < names.index("cu121") < names.index("cu130")
    assert names.index("rocm6.2") < names.index("rocm6.2.4") < names.index("rocm7.14")


# --- architectures --------------------------------------------------------------------------------


def covers(data: Matrices, torch: str, variant: str, platform: str, cc: str) -> bool:
    arch = data.arch_list(torch, variant, platform)
    assert arch is not None, (torch, variant, platform)
    return arch.covers(cc)


def test_pascal_needs_cu126_or_older(data: Matrices) -> None:
    assert covers(data, "2.7.1", "cu126", "linux-x86_64", "6.1")  # sm_60 SASS runs on 6.1
    assert not covers(data, "2.7.1", "cu128", "linux-x86_64", "6.1")
    assert not covers(data, "2.13.0", "cu130", "linux-x86_64", "6.1")


def test_blackwell_needs_cu128_or_newer(data: Matrices) -> None:
    assert covers(data, "2.7.0", "cu128", "linux-x86_64", "12.0")
    assert not covers(data, "2.7.0", "cu126", "linux-x86_64", "12.0")
    assert covers(data, "2.13.0", "cu130", "linux-x86_64", "12.1")  # GB10 runs sm_120 SASS
    assert covers(data, "2.13.0", "cu130", "linux-x86_64", "10.3")  # B300 runs sm_100 SASS


def test_volta_in_cu128_comes_and_goes(data: Matrices) -> None:
    assert not covers(data, "2.7.1", "cu128", "linux-x86_64", "7.0")
    assert covers(data, "2.8.0", "cu128", "linux-x86_64", "7.0")
    assert covers(data, "2.10.0", "cu128", "linux-x86_64", "7.0")
    assert not covers(data, "2.11.0", "cu128", "linux-x86_64", "7.0")


def test_ptx_covers_newer_gpus_only(data: Matrices) -> None:
    arch = data.arch_list("2.10.0", "cu130", "linux-x86_64")
    assert arch is not None and arch.ptx == "12.0"
    assert arch.covers("13.0")  # a future GPU JITs the 12.0 PTX
    assert not arch.covers("11.0")  # Thor: no SASS on x86_64, PTX 12.0 is newer than 11.0
    shipped = data.arch_list("2.13.0", "cu130", "linux-x86_64")  # read from the wheel: SASS only
    assert shipped is not None and shipped.ptx is None and not shipped.covers("13.0")
    assert covers(data, "2.13.0", "cu130", "linux-aarch64", "11.0")
    windows = data.arch_list("2.13.0", "cu130", "windows-amd64")
    assert windows is not None and windows.ptx is None and not windows.covers("13.0")


def test_kepler_only_in_cu118_up_to_2_5(data: Matrices) -> None:
    assert covers(data, "2.5.1", "cu118", "linux-x86_64", "3.7")
    assert not covers(data, "2.5.1", "cu121", "linux-x86_64", "3.7")


def test_arch_list_unknown_combinations(data: Matrices) -> None:
    assert data.arch_list("2.5.1", "cu130", "linux-x86_64") is None
    assert data.arch_list("2.13.0", "cu130", "macos-arm64") is None
    assert data.arch_list("2.13.0", "cpu", "linux-x86_64") is None


def test_arch_rows_carry_their_confidence(data: Matrices) -> None:
    sourced = data.arch_list("2.8.0", "cu126", "windows-amd64")
    assumed = data.arch_list("2.8.0", "cu128", "windows-amd64")
    assert sourced is not None and sourced.confirmed
    assert assumed is not None and not assumed.confirmed and assumed.notes


def test_windows_lists_differ_from_linux(data: Matrices) -> None:
    """Windows CUDA 12.x builds add sm_61; the cu118 script embeds PTX for 3.7 (JIT anywhere)."""
    assert covers(data, "2.8.0", "cu126", "windows-amd64", "6.1")
    windows = data.arch_list("2.5.1", "cu118", "windows-amd64")
    assert windows is not None and windows.ptx == "3.7" and windows.covers("8.9")
    assert "compute_37" in windows.get_arch_list()
    linux = data.arch_list("2.5.1", "cu118", "linux-x86_64")
    assert linux is not None and linux.ptx is None and not linux.covers("10.0")


def test_get_arch_list_spelling(data: Matrices) -> None:
    arch = data.arch_list("2.7.0", "cu128", "linux-x86_64")
    assert arch is not None
    assert arch.get_arch_list() == (
        "sm_75",
        "sm_80",
        "sm_86",
        "sm_90",
        "sm_100",
        "sm_120",
        "compute_120",
    )


def test_covers_rules_on_a_synthetic_row() -> None:
    row = ArchList(
        torch=">=1",
        variant="cu999",
        platforms=("linux-x86_64",),
        sm=("5.0", "8.0"),
        ptx="8.0",
        source="https://example.invalid",
    )
    assert row.covers("5.2")
    assert not row.covers("6.0")  # SASS never crosses a major; 6.0 < PTX 8.0
    assert row.covers("8.9")
    assert row.covers("9.0")  # PTX 8.0 JIT
    assert not ArchList(
        torch=">=1", variant="cu999", platforms=(), sm=("8.6",), ptx=None, source="x"
    ).covers("8.0")  # SASS for 8.6 does not run on 8.0


def test_rocm_targets(data: Matrices) -> None:
    targets = data.rocm_targets("rocm7.2")
    assert targets is not None and "gfx1151" in targets and "gfx950" in targets
    older = data.rocm_targets("rocm6.2")
    assert older is not None and "gfx1101" not in older
    assert data.rocm_targets("rocm5.7") is None  # present but not known: never an empty "no"
    row = data.rocm_row("rocm5.7")
    assert row is not None and not row.confirmed
    assert data.rocm_targets("rocm99.0") is None


def test_variant_helpers() -> None:
    assert variant_cuda("cu121") == "12.1"
    assert variant_cuda("cu102") == "10.2"
    assert variant_cuda("cu130") == "13.0"
    assert variant_cuda("rocm6.2") is None
    assert variant_cuda("cpu") is None
    ordered = sorted(["xpu", "rocm6.2.4", "cu130", "cpu", "cu118", "rocm6.2"], key=variant_sort_key)
    assert ordered == ["cpu", "cu118", "cu130", "rocm6.2", "rocm6.2.4", "xpu"]


# --- loading --------------------------------------------------------------------------------------


def test_load_is_cached_per_directory(copy: Path) -> None:
    assert matrices.load() is matrices.load()
    assert matrices.load(copy) is matrices.load(str(copy))
    assert matrices.load(copy) is not matrices.load(DATA)


def test_default_directory_is_the_checkout_data() -> None:
    assert matrices.default_directory() == DATA
    assert matrices.load().directory == DATA


def test_missing_file_is_a_clear_error(copy: Path) -> None:
    (copy / "archs.toml").unlink()
    with pytest.raises(MatricesError) as error:
        matrices.load(copy)
    assert "archs.toml" in str(error.value)
    assert "hint:" in str(error.value)
    assert isinstance(error.value, EnvsetupError) and error.value.exit_code == 1


def test_invalid_toml_is_a_clear_error(copy: Path) -> None:
    (copy / "torch.toml").write_text("[[release]]\ntorch = \n", encoding="utf-8")
    with pytest.raises(MatricesError, match=r"torch\.toml is not valid TOML"):
        matrices.load(copy)


def test_wrong_type_names_file_row_and_key(copy: Path) -> None:
    text = (copy / "nvidia.toml").read_text(encoding="utf-8")
    (copy / "nvidia.toml").write_text(text.replace("update = 0", 'update = "GA"', 1), "utf-8")
    with pytest.raises(MatricesError, match=r"nvidia\.toml \[\[toolkit\]\] #1: key 'update'"):
        matrices.load(copy)


def test_bad_specifier_is_reported_when_used(copy: Path) -> None:
    text = (copy / "archs.toml").read_text(encoding="utf-8")
    (copy / "archs.toml").write_text(text.replace('">=1.12,<1.14"', '"1.12 to 1.13"'), "utf-8")
    loaded = matrices.load(copy)
    with pytest.raises(MatricesError, match="not a PEP 440 specifier"):
        loaded.arch_list("1.12.1", "cu102", "linux-x86_64")


def test_cache_can_be_turned_off(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", "")
    assert user_cache.cache_directory() is None
    assert _toml.read_documents(copy)["nvidia.toml"]["schema"] == 1


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG applies to Linux and BSDs")
def test_cache_directory_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVSETUP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache.cache_directory() == tmp_path / "xdg" / "envsetup"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.cache_directory() == tmp_path / "home" / ".cache" / "envsetup"


def test_unwritable_cache_is_not_an_error(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache path under a regular file cannot be created, even by root."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(blocker / "cache"))
    assert _toml.read_documents(copy)["archs.toml"]["schema"] == 1
    assert _toml.read_documents(copy)["nvidia.toml"]["schema"] == 1  # and again: no cache
    assert blocker.read_text(encoding="utf-8") == ""


def test_loading_imports_no_toml_parser_when_cached(tmp_path: Path) -> None:
    """A warm `load()` must not pay for tomllib: that is the point of the cache."""
    env = {**os.environ, "ENVSETUP_CACHE_DIR": str(tmp_path)}
    code = (
        "import sys, envsetup.matrices as m; m.load(); "
        "print('tomllib' in sys.modules or 'tomli' in sys.modules)"
    )
    run = [sys.executable, "-c", code]
    cold = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert (cold.stdout.strip(), warm.stdout.strip()) == ("True", "False"), cold.stderr


def test_arch_name_is_torchs_spelling_and_reads_back() -> None:
    assert arch_name("8.6") == "sm_86"
    assert arch_name("12.0", "compute") == "compute_120"
    back = ArchList.from_torch([arch_name("8.6"), arch_name("12.0"), arch_name("9.0", "compute")])
    assert (back.sm, back.ptx) == (("8.6", "12.0"), "9.0")
