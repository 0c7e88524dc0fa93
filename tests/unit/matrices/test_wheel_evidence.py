"""`envsetup matrix verify` against small fake wheels on 127.0.0.1 that carry the real fields:
METADATA (Requires-Python, Requires-Dist), torch/version.py and a libtorch_cuda.so with CUDA
fatbin headers. Checked against the real matrices/: what the wheels confirm, contradict, or
cannot show, read by range requests or, from a server without them, by a cached download."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from support.fake_index import serve_index

from envsetup import matrices
from envsetup.matrices.registry import EvidenceCache
from envsetup.matrices.wheel_evidence import (
    CONFIRMED,
    CONTRADICTED,
    UNREACHABLE,
    Report,
    fatbin_archs,
    verify,
)


def fatbin(elf: list[int], ptx: list[int] = ()) -> bytes:  # type: ignore[assignment]
    """One fatbin container as nvcc lays it out: header, then (entry header, payload) pairs."""
    entries = b""
    for kind, arch in [(2, a) for a in elf] + [(1, a) for a in ptx]:
        payload = b"\x7fELF" + bytes(12)
        header = struct.pack("<HHIQ", kind, 0x0101, 64, len(payload)) + bytes(12)
        header += struct.pack("<I", arch) + bytes(64 - 32)
        entries += header + payload
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(entries)) + entries


def cuda_library(ptx: list[int] = ()) -> bytes:  # type: ignore[assignment]
    common = [75, 80, 86, 90, 100, 120]
    return b"\0ELF" + b"\0" * 100 + fatbin(common, ptx) + fatbin(common) + fatbin([*common, 89])


def write_wheel(
    folder: Path,
    name: str,
    version: str,
    tag: str,
    requires: str,
    members: dict[str, str | bytes] | None = None,
) -> str:
    filename = f"{name}-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}"
    with zipfile.ZipFile(folder / filename, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
        for member, content in (members or {}).items():
            archive.writestr(member, content)
    return filename


def registry(root: Path, *, ptx: list[int] = ()) -> Path:  # type: ignore[assignment]
    """torch 2.14.0 and 2.15.0 as the real registry has them, plus a cp310 macOS wheel of 2.15.0
    that the matrices do not list (a contradiction), and torchvision 0.29.0 for 2.14.0."""
    files = root / "files"
    files.mkdir(parents=True)
    wheels: dict[str, list[str]] = {"torch": [], "torchvision": [], "torchaudio": []}
    version_py = "__version__ = '{}'\ndebug = False\ncuda: str | None = {}\n"
    for release, variant, cuda in (("2.15.0", "cu132", "'13.2'"), ("2.14.0", "cu130", "'13.0'")):
        floor = "3.11" if release == "2.15.0" else "3.10"
        linux = write_wheel(
            files,
            "torch",
            release,
            f"cp{floor.replace('.', '')}-cp{floor.replace('.', '')}-manylinux_2_28_x86_64",
            f"Requires-Python: >={floor}\nRequires-Dist: filelock\n",
            {
                "torch/version.py": version_py.format(f"{release}+{variant}", cuda),
                "torch/lib/libtorch_cuda.so": cuda_library(ptx),
            },
        )
        windows = write_wheel(
            files,
            "torch",
            release,
            "cp314-cp314t-win_amd64",
            f"Requires-Python: >={floor}\n",
            {"torch/version.py": version_py.format(f"{release}+cpu", None)},
        )
        wheels["torch"] += [linux, windows]
    wheels["torch"].append(
        write_wheel(files, "torch", "2.15.0", "cp310-cp310-macosx_14_0_arm64", "")
    )
    wheels["torchvision"].append(
        write_wheel(
            files,
            "torchvision",
            "0.29.0",
            "cp310-cp310-manylinux_2_28_x86_64",
            "Requires-Dist: torch==2.14.0\n",
        )
    )
    wheels["torchaudio"].append(
        write_wheel(
            files,
            "torchaudio",
            "2.11.0",
            "cp310-cp310-manylinux_2_28_x86_64",
            "Requires-Dist: torch==2.11.0\n",
        )
    )
    for project, names in wheels.items():
        page = root / "simple" / project
        page.mkdir(parents=True)
        links = "".join(f'<a href="../../files/{n}">{n}</a>\n' for n in names)
        (page / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root


def by_field(report: Report, torch: str) -> dict[str, tuple[str, str, str]]:
    return {c.field: (c.status, c.found, c.evidence) for c in report.checks if c.torch == torch}


@pytest.fixture
def cache(tmp_path: Path) -> EvidenceCache:
    return EvidenceCache(tmp_path / "cache")


def test_fatbin_headers_give_the_sass_and_ptx_per_fatbin() -> None:
    data = b"junk" + fatbin([75, 120], [120]) + b"more" + fatbin([75])
    sass, ptx, count = fatbin_archs(data)
    assert (sass, ptx, count) == ({75: 2, 120: 1}, {120: 1}, 2)


def test_verify_confirms_contradicts_and_says_what_it_cannot_see(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    data = matrices.load()
    with serve_index(registry(tmp_path / "registry")) as served:
        report = verify(data, served.url + "/simple/", archs="==2.15.0", cache=cache)
        ranged = list(served.server.ranged)
    new = by_field(report, "2.15.0")
    assert new["requires_python"][:2] == (CONFIRMED, ">=3.11")
    assert new["pypi_default.linux-x86_64"][0] == CONFIRMED
    assert "__version__ = '2.15.0+cu132'" in new["pypi_default.linux-x86_64"][2]
    assert new["pypi_default.windows-amd64"][:2] == (CONFIRMED, "cpu")
    assert new["torchvision"][:2] == (CONFIRMED, "none")  # nothing pins torch==2.15.0
    # a cp310 wheel the matrices do not list; Pythons only download.pytorch.org could show
    assert new["python.macos-arm64"][0] == CONTRADICTED
    assert "wheels the matrices lack: 3.10" in new["python.macos-arm64"][2]
    assert new["python.linux-x86_64"][0] == UNREACHABLE
    # the arch list of the libtorch_cuda.so inside the wheel: sm_89 is in one kernel of three
    assert new["archs.cu132.sm"][:2] == (CONFIRMED, "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120")
    assert "a few kernels also: sm_89" in new["archs.cu132.sm"][2]
    assert new["archs.cu132.ptx"][:2] == (CONFIRMED, "-")
    assert report.arch_releases == ["2.15.0"]
    old = by_field(report, "2.14.0")
    assert old["torchvision"][:2] == (CONFIRMED, "0.29.0")
    assert "torchvision-0.29.0 ==2.14.0" in old["torchvision"][2]
    assert "archs.cu130.sm" not in old  # --archs chose 2.15.0 only
    # releases the registry does not serve are reported, not guessed
    assert by_field(report, "2.5.1")["python"][0] == UNREACHABLE
    assert report.missing == []
    assert ranged and all(r.startswith("bytes=") for r in ranged)
    assert not (cache.root / "wheels").exists()  # ranges: nothing downloaded whole


def test_ptx_the_matrices_lack_is_a_contradiction(tmp_path: Path, cache: EvidenceCache) -> None:
    with serve_index(registry(tmp_path / "registry", ptx=[120])) as served:
        report = verify(matrices.load(), served.url + "/simple/", archs="all", cache=cache)
    ptx = by_field(report, "2.15.0")["archs.cu132.ptx"]
    assert ptx[:2] == (CONTRADICTED, "compute_120")


def test_without_range_support_the_wheel_is_downloaded_once_into_the_cache(
    tmp_path: Path, cache: EvidenceCache
) -> None:
    root = registry(tmp_path / "registry")
    with serve_index(root, ranges=False) as served:
        first = verify(matrices.load(), served.url + "/simple/", archs="==2.15.0", cache=cache)
        downloads = [r for r in served.requests if r.endswith(".whl")]
    assert by_field(first, "2.15.0")["archs.cu132.sm"][0] == CONFIRMED
    assert (cache.root / "wheels" / "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl").exists()
    with serve_index(root) as served:  # a second run reads what was cached, not the network
        again = verify(matrices.load(), served.url + "/simple/", archs="==2.15.0", cache=cache)
        assert [r for r in served.requests if r.endswith(".whl")] == []
    assert downloads and again.counts() == first.counts()


def test_cli_refuses_plain_http_and_bad_specifiers(capsys: pytest.CaptureFixture[str]) -> None:
    from envsetup.cli import main

    assert main(["matrix", "verify", "--index", "http://127.0.0.1:9/simple/"]) != 0
    assert "--allow-insecure-index" in capsys.readouterr().err
    assert main(["matrix", "verify", "--archs", "2.15"]) != 0
    assert "PEP 440 specifier" in capsys.readouterr().err
