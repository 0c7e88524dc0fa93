"""Index listings (PEP 503 HTML, PEP 691 JSON) → wheels → what the matrices lack. Offline: the
listings are written by the tests and served, when a URL is needed, on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version
from support.fake_index import serve_index

from envsetup import matrices
from envsetup.errors import EnvsetupError, UsageError
from envsetup.matrices import index_listing
from envsetup.matrices.index_listing import (
    ListingError,
    file_names,
    missing_from,
    parse_wheel,
    read_listing,
    summarize,
    wheels,
)

#: Names as download.pytorch.org/whl/torch/ spells them.
KNOWN = [
    "torch-2.5.1+cu121-cp311-cp311-linux_x86_64.whl",
    "torch-2.5.1+cu124-cp313-cp313-linux_x86_64.whl",
    "torch-2.5.1+cpu-cp312-cp312-win_amd64.whl",
    "torch-2.5.1-cp312-none-macosx_11_0_arm64.whl",
    "torch-2.5.1-cp311-cp311-manylinux2014_aarch64.whl",
    "torch-2.9.1+cu130-cp314-cp314t-manylinux_2_28_x86_64.whl",
]
NEW = [
    "torch-2.15.1+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",
    "torch-2.15.1+cu130-cp314-cp314t-manylinux_2_28_x86_64.whl",
    "torch-2.15.1+cpu-cp312-cp312-win_amd64.whl",
    "torch-2.15.1-cp312-none-macosx_11_0_arm64.whl",
    "torch-2.13.0+cu134-cp312-cp312-manylinux_2_28_x86_64.whl",
    "torch-2.13.0+cu130-cp315-cp315-win_amd64.whl",
]
IGNORED = [
    "torch-2.16.0.dev20261101+cu132-cp312-cp312-manylinux_2_28_x86_64.whl",  # nightly
    "torch-2.15.0rc1+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",  # release candidate
    "torch-2.5.1-cp312-cp312-win_arm64.whl",  # a platform the matrices do not model
    "torch-2.5.1.tar.gz",
]


def html(names: list[str]) -> str:
    links = "\n".join(
        f'<a href="/whl/{name.replace("+", "%2B")}#sha256=00">{name}</a><br/>' for name in names
    )
    return f"<!DOCTYPE html>\n<html><body><h1>Links for torch</h1>\n{links}\n</body></html>\n"


def pep691(names: list[str]) -> str:
    files = [{"filename": n, "url": f"/whl/{n}", "hashes": {"sha256": "00"}} for n in names]
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "torch", "files": files})


@pytest.fixture
def data() -> matrices.Matrices:
    return matrices.load()


# --- file names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "variant", "pythons", "platform"),
    [
        (
            "torch-2.5.1+cu121-cp311-cp311-linux_x86_64.whl",
            "2.5.1",
            "cu121",
            ("3.11",),
            "linux-x86_64",
        ),
        (
            "torch-2.6.0+cu126-cp313-cp313t-manylinux_2_28_x86_64.whl",
            "2.6.0",
            "cu126",
            ("3.13t",),
            "linux-x86_64",
        ),
        ("torch-2.5.1-cp312-none-macosx_11_0_arm64.whl", "2.5.1", None, ("3.12",), "macos-arm64"),
        ("torch-2.2.2-cp38-none-macosx_10_9_x86_64.whl", "2.2.2", None, ("3.8",), "macos-x86_64"),
        ("torch-2.5.1+cpu-cp39-cp39-win_amd64.whl", "2.5.1", "cpu", ("3.9",), "windows-amd64"),
        (
            "torch-2.7.0+cu128-cp312-cp312-manylinux_2_28_aarch64.whl",
            "2.7.0",
            "cu128",
            ("3.12",),
            "linux-aarch64",
        ),
        (
            "torch-2.0.0+rocm5.4.2-cp310-cp310-linux_x86_64.whl",
            "2.0.0",
            "rocm5.4.2",
            ("3.10",),
            "linux-x86_64",
        ),
        ("torch-2.5.1+xpu-cp311-cp311-win_amd64.whl", "2.5.1", "xpu", ("3.11",), "windows-amd64"),
        # A local label that is not an index variant (old C++11 ABI builds) names no variant.
        (
            "torch-2.1.0+cpu.cxx11.abi-cp310-cp310-linux_x86_64.whl",
            "2.1.0",
            None,
            ("3.10",),
            "linux-x86_64",
        ),
        ("torch-2.5.1-cp312-cp312-win_arm64.whl", "2.5.1", None, ("3.12",), None),
        ("torch-2.1.0-cp311-none-macosx_11_0_universal2.whl", "2.1.0", None, ("3.11",), None),
        (
            "torch-2.9.0+cpu-cp312-cp312-musllinux_1_2_aarch64.whl",
            "2.9.0",
            "cpu",
            ("3.12",),
            "linux-aarch64",
        ),
    ],
)
def test_parse_wheel(
    name: str, version: str, variant: str | None, pythons: tuple[str, ...], platform: str | None
) -> None:
    wheel = parse_wheel(name)
    assert wheel is not None
    assert (wheel.version, wheel.variant, wheel.pythons, wheel.platform) == (
        Version(version),
        variant,
        pythons,
        platform,
    )


@pytest.mark.parametrize(
    "name", ["torch-2.5.1.tar.gz", "torch-2.5.1.whl", "not a wheel.whl", "index.html", ""]
)
def test_non_wheels_are_skipped(name: str) -> None:
    assert parse_wheel(name) is None


# --- listings -------------------------------------------------------------------------------------


def test_pep503_names_come_from_the_anchor_text_or_the_href() -> None:
    page = (
        html(KNOWN[:2])
        + '<a href="https://x.invalid/whl/torch-2.5.1%2Bcpu-cp39-cp39-win_amd64.whl"></a>'
    )
    assert file_names(page) == [*KNOWN[:2], "torch-2.5.1+cpu-cp39-cp39-win_amd64.whl"]


def test_pep691_json_is_detected_by_content_type_or_content() -> None:
    text = pep691(KNOWN)
    assert file_names(text) == KNOWN
    assert file_names(" \n" + text, "application/vnd.pypi.simple.v1+json") == KNOWN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "torch"}', "no 'files' list"),
        ('["torch"]', "no 'files' list"),
    ],
)
def test_malformed_json_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ListingError, match=message) as error:
        file_names(text, "application/json")
    assert error.value.exit_code == 1


def test_html_and_json_give_the_same_wheels() -> None:
    names = KNOWN + NEW + IGNORED
    assert wheels(html(names)) == wheels(pep691(names))


def test_summarize_skips_prereleases_and_unmodelled_platforms() -> None:
    upstream = summarize(wheels(html(KNOWN + IGNORED)))
    assert list(upstream) == [Version("2.5.1"), Version("2.9.1")]
    release = upstream[Version("2.5.1")]
    assert release.variants == {
        "linux-x86_64": {"cu121", "cu124"},
        "windows-amd64": {"cpu"},
    }
    assert release.pythons["linux-x86_64"] == {"3.11", "3.13"}
    assert release.pythons["macos-arm64"] == {"3.12"}
    assert "windows-arm64" not in release.pythons


# --- compared with the matrices -------------------------------------------------------------------


def test_known_wheels_give_no_findings(data: matrices.Matrices) -> None:
    findings = missing_from(data, summarize(wheels(html(KNOWN))))
    assert not findings
    assert findings.releases == findings.variants == findings.pythons == ()


def test_new_release_variant_and_python_are_reported(data: matrices.Matrices) -> None:
    findings = missing_from(data, summarize(wheels(pep691(KNOWN + NEW))))
    assert [str(new.version) for new in findings.releases] == ["2.15.1"]
    new = findings.releases[0]
    assert new.all_pythons() == {"3.12", "3.14t"}
    assert new.variants == {"linux-x86_64": {"cu130"}, "windows-amd64": {"cpu"}}
    assert findings.variants == (("2.13.0", "linux-x86_64", "cu134"),)
    # 3.15 is only `python_unconfirmed` for 2.13.0: a real wheel is news.
    assert findings.pythons == (("2.13.0", "windows-amd64", "3.15"),)
    assert findings


def test_python_outside_its_known_platforms_is_reported(data: matrices.Matrices) -> None:
    """2.6's 3.13t is known for Linux x86_64 only: a Windows cp313t wheel is news."""
    name = "torch-2.6.0+cu126-cp313-cp313t-win_amd64.whl"
    findings = missing_from(data, summarize(wheels(html([name]))))
    assert findings.pythons == (("2.6.0", "windows-amd64", "3.13t"),)
    assert not findings.variants and not findings.releases


# --- reading --------------------------------------------------------------------------------------


def test_read_listing_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "torch.html"
    path.write_text(html(KNOWN), encoding="utf-8")
    text, content_type = read_listing(str(path))
    assert content_type is None
    assert file_names(text) == KNOWN


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the listing file") as error:
        read_listing(str(tmp_path / "nope.html"))
    assert error.value.exit_code == 2


def test_unsupported_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unsupported listing URL"):
        read_listing("ftp://example.invalid/whl/torch/")


def test_read_listing_over_http_and_file_urls(tmp_path: Path) -> None:
    (tmp_path / "whl" / "torch").mkdir(parents=True)
    (tmp_path / "whl" / "torch" / "index.html").write_text(html(KNOWN), encoding="utf-8")
    (tmp_path / "torch.json").write_text(pep691(NEW), encoding="utf-8")
    with serve_index(tmp_path) as served:
        with pytest.raises(UsageError, match="is plain http://"):
            read_listing(f"{served.url}/whl/torch/", timeout=10)
        assert served.requests == []
        text, content_type = read_listing(f"{served.url}/whl/torch/", 10, allow_insecure=True)
        assert content_type is not None and content_type.startswith("text/html")
        assert file_names(text, content_type) == KNOWN
        text, content_type = read_listing(f"{served.url}/torch.json", 10, allow_insecure=True)
        assert content_type == "application/json"
        assert file_names(text, content_type) == NEW
        with pytest.raises(ListingError, match="could not read the index listing") as error:
            read_listing(f"{served.url}/missing/", 10, allow_insecure=True)
        assert "--listing FILE" in str(error.value)
    text, _ = read_listing((tmp_path / "torch.json").as_uri())
    assert file_names(text) == NEW


def test_listing_error_is_an_envsetup_error() -> None:
    assert issubclass(index_listing.ListingError, EnvsetupError)
