"""`envsetup matrix` and `envsetup matrix update`, through the real CLI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from support.fake_index import serve_index
from unit.matrices.test_index_listing import KNOWN, NEW, html, pep691

from envsetup.cli import main
from envsetup.integrations.cells import cells
from envsetup.matrices import load

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(tmp_path / "cache"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["matrix", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


# --- listing --------------------------------------------------------------------------------------


def test_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    document = as_json(capsys)
    assert set(document) == {"releases", "cuda"}
    versions = [release["torch"] for release in document["releases"]]
    assert versions[0] == "1.12.0" and versions == sorted(versions, key=Version)
    assert versions[-1] == load().releases[-1].torch  # the data's newest, not a pinned release
    for release in document["releases"]:
        assert {"torch", "python", "variants", "pypi_default", "companions", "archs"} <= set(
            release
        )
        assert set(release["companions"]) == {"torchvision", "torchaudio"}
        assert set(release["variants"]) == set(release["pypi_default"])
    cudas = [row["cuda"] for row in document["cuda"]]
    assert cudas[0] == "9.0" and cudas[-1] == "13.4"


def test_one_release(capsys: pytest.CaptureFixture[str]) -> None:
    [release] = as_json(capsys, "--torch", "2.5.1")["releases"]
    assert release["companions"] == {"torchvision": "0.20.1", "torchaudio": "2.5.1"}
    assert release["pypi_default"]["linux-x86_64"] == "cu124"
    assert release["archs"]["cu121"] == [
        "sm_50",
        "sm_60",
        "sm_70",
        "sm_75",
        "sm_80",
        "sm_86",
        "sm_90",
    ]
    assert "gfx1100" in release["archs"]["rocm6.2"]
    assert "cpu" not in release["archs"] and "xpu" not in release["archs"]
    assert release["confirmed"] is True


def test_specifiers_and_minor_versions(capsys: pytest.CaptureFixture[str]) -> None:
    minor = as_json(capsys, "--torch", "2.5")["releases"]
    assert [r["torch"] for r in minor] == ["2.5.0", "2.5.1"]
    ranged = as_json(capsys, "--torch", ">=2.12,<2.14")["releases"]
    assert [r["torch"] for r in ranged] == ["2.12.0", "2.12.1", "2.13.0"]
    assert all(r["companions"]["torchaudio"] is None for r in ranged)


def test_platform_filter_narrows_variants_and_archs(capsys: pytest.CaptureFixture[str]) -> None:
    [release] = as_json(capsys, "--torch", "2.13.0", "--platform", "windows-amd64")["releases"]
    assert release["variants"] == {"windows-amd64": ["cpu", "cu126", "cu130", "cu132", "xpu"]}
    assert release["pypi_default"] == {"windows-amd64": "cpu"}
    assert "compute_120" not in release["archs"]["cu130"]  # no PTX in Windows builds
    aarch = as_json(capsys, "--torch", "2.13.0", "--platform", "linux-aarch64")["releases"][0]
    assert "sm_110" in aarch["archs"]["cu130"]


def test_python_filter_respects_platform_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    linux = as_json(capsys, "--python", "3.13", "--platform", "linux-x86_64")["releases"]
    windows = as_json(capsys, "--python", "3.13", "--platform", "windows-amd64")["releases"]
    assert linux[0]["torch"] == "2.5.0"
    assert windows[0]["torch"] == "2.6.0"
    threaded = as_json(capsys, "--python", "3.13t")["releases"]
    assert [r["torch"] for r in threaded][-1] == "2.12.0"  # PyPI's last cp313t wheels


def test_variant_filter(capsys: pytest.CaptureFixture[str]) -> None:
    document = as_json(capsys, "--variant", "cu121")
    assert [r["torch"] for r in document["releases"]] == [
        "2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.4.0",
        "2.4.1", "2.5.0", "2.5.1",
    ]  # fmt: skip
    assert {row["cuda"] for row in document["cuda"]} == {"11.8", "12.1", "12.4"}
    row = next(r for r in document["cuda"] if r["cuda"] == "12.1" and r["update"] == 0)
    assert row["driver"] == {"linux": "530.30.02", "windows": "531.14"}
    assert row["minor_compat_floor"] == {"linux": "525.60.13", "windows": "528.33"}
    assert row["source"].startswith("https://docs.nvidia.com/")


def test_newest(capsys: pytest.CaptureFixture[str]) -> None:
    releases = as_json(capsys, "--variant", "cu118", "--newest", "2")["releases"]
    assert [r["torch"] for r in releases] == ["2.7.0", "2.7.1"]


@pytest.mark.parametrize(
    ("filters", "newest"),
    [
        (["--python", "3.13", "--variant", "rocm6.2.4"], "3"),  # 2.6 built 3.13 for no ROCm
        (["--python", "3.13t", "--variant", "rocm6.2.4"], "5"),
        (["--variant", "cu118"], "2"),
        (["--torch", "<2.5", "--python", "3.10"], "3"),
    ],
)
def test_newest_means_the_same_in_the_listing_the_ci_forms_and_cells(
    capsys: pytest.CaptureFixture[str], filters: list[str], newest: str
) -> None:
    """One meaning of --newest: the N newest releases that still publish a wheel the filters
    allow, whether the verb lists them, exports them as CI jobs, or `cells()` generates them."""
    argv = ["--platform", "linux-x86_64", *filters, "--newest", newest]
    listed = [r["torch"] for r in as_json(capsys, *argv)["releases"]]
    code, out, err = run(capsys, *argv, "--format", "github")
    assert code == 0, err
    exported = list(dict.fromkeys(job["torch"] for job in json.loads(out)["include"]))
    options = dict(zip(filters[::2], filters[1::2]))
    generated = cells(
        platform="linux-x86_64",
        torch=options.get("--torch"),
        python=options.get("--python"),
        variants=options.get("--variant"),
        newest=int(newest),
    )
    assert listed == exported[::-1] == list(dict.fromkeys(c.torch for c in generated))[::-1]
    assert "2.6.0" not in listed or "rocm6.2.4" not in filters  # no 3.13 ROCm wheel of 2.6.0


def test_a_release_without_the_filtered_wheel_is_not_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1.13.1 has Python 3.11 wheels and cu116 wheels, but no cu116 wheel for 3.11."""
    code, out, err = run(
        capsys, "--platform", "linux-x86_64", "--python", "3.11", "--variant", "cu116"
    )
    assert code == 1 and out == ""
    assert "no release in the matrices matches --python 3.11" in err


def test_table_marks_what_is_unconfirmed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--torch", ">=2.14")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "torch", "released", "platform", "python", "variants", "pypi", "vision", "audio",
    ]  # fmt: skip
    assert any(line.startswith("2.15.0*") for line in lines)
    assert any(line.strip().startswith("2.15.0: variants") for line in lines)
    assert any("3.11-3.15, 3.14t, 3.15t" in line for line in lines)
    assert any(line.startswith("13.0*") and "580.65.06" in line for line in lines)


def test_table_says_when_there_is_no_minor_version_compat(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--torch", "1.12.1", "--platform", "linux-x86_64")
    assert code == 0
    assert "1.12.1" in out and "cu102" in out and "0.13.1" in out and "0.12.1" in out
    assert any(line.startswith("10.2") and "no minor-version" in line for line in out.splitlines())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "cuda12"], "--variant 'cuda12' is not a variant name"),
        (["--python", "3"], "--python '3' is not a Python version"),
        (["--torch", "two point five"], "not a valid PEP 440 version or specifier"),
        (["--newest", "0"], "--newest='0': expected a positive number of releases"),
    ],
)
def test_bad_filters_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--platform", "solaris-sparc"], "invalid choice"),
        (["update", "--timeout", "0"], "expected seconds between 0 and 600"),
        (["update", "--timeout", "soon"], "expected seconds between 0 and 600"),
    ],
)
def test_argparse_rejects_bad_values(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["matrix", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_nothing_matches_is_exit_1_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--variant", "cu999")
    assert code == 1 and out == ""
    assert "no release in the matrices matches --variant cu999" in err
    assert "hint:" in err
    code, _, err = run(capsys, "--torch", "2.5.1", "--platform", "macos-x86_64")
    assert code == 1 and "--platform macos-x86_64" in err


# --- update ---------------------------------------------------------------------------------------


def listing(tmp_path: Path, names: list[str], *, as_json_listing: bool = False) -> str:
    path = tmp_path / ("torch.json" if as_json_listing else "torch.html")
    path.write_text(pep691(names) if as_json_listing else html(names), encoding="utf-8")
    return str(path)


def test_update_with_nothing_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "update", "--listing", listing(tmp_path, KNOWN), "--check")
    assert code == 0
    assert f"({len(KNOWN)} wheels)" in out
    assert "The matrices know every release, variant and Python tag it lists." in out


def test_update_reports_and_prints_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "update", "--listing", listing(tmp_path, KNOWN + NEW))
    assert code == 0  # without --check, news is a report, not a failure
    assert "New releases (1): 2.15.1" in out
    assert "New variant: torch 2.13.0 linux-x86_64 cu134" in out
    assert "New Python tag: torch 2.13.0 windows-amd64 3.15" in out
    assert "not merged" in out
    stub = out[out.index("[[release]]") : out.index("# torch 2.13.0")]
    row = tomllib.loads(stub)["release"][0]
    assert row["torch"] == "2.15.1"
    assert row["python"] == ["3.12", "3.14t"]
    assert row["confirmed"] is False
    assert row["variants"] == {
        "linux-x86_64": ["cu130"],  # no +cpu wheel listed: no "cpu" variant invented
        "windows-amd64": ["cpu"],
        "macos-arm64": ["cpu"],
    }
    assert row["python_platforms"] == {"3.14t": ["linux-x86_64"]}
    assert "variants.macos-arm64" in row["unconfirmed"]
    assert "variants.linux-x86_64" not in row["unconfirmed"]
    assert row["date"].startswith("FILL IN") and row["pypi_default"]["macos-arm64"] == "FILL IN"
    assert row["sources"] == [str(tmp_path / "torch.html")]


def test_update_check_fails_when_upstream_knows_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = listing(tmp_path, KNOWN + NEW, as_json_listing=True)
    code, out, _ = run(capsys, "update", "--listing", path, "--check", "--json")
    assert code == 1
    document = json.loads(out)
    assert document["wheels"] == len(KNOWN + NEW)
    assert [r["torch"] for r in document["new_releases"]] == ["2.15.1"]
    assert document["new_variants"] == [
        {"torch": "2.13.0", "platform": "linux-x86_64", "variant": "cu134"}
    ]
    assert document["new_pythons"] == [
        {"torch": "2.13.0", "platform": "windows-amd64", "python": "3.15"}
    ]


def test_update_over_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "whl" / "torch").mkdir(parents=True)
    (tmp_path / "whl" / "torch" / "index.html").write_text(html(KNOWN + NEW), encoding="utf-8")
    with serve_index(tmp_path) as served:
        url = f"{served.url}/whl/torch/"
        code, _, err = run(capsys, "update", "--listing", url, "--check")
        assert code == 2 and "is plain http://" in err and "--allow-insecure-index" in err
        assert served.requests == []  # refused before anything is fetched
        code, out, _ = run(capsys, "update", "--listing", url, "--check", "--allow-insecure-index")
        assert served.requests == ["/whl/torch/"]
    assert code == 1
    assert "New releases (1): 2.15.1" in out


def test_update_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "update", "--listing", str(tmp_path / "missing.html"))
    assert code == 2 and "cannot read the listing file" in err
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body>nothing</body></html>", encoding="utf-8")
    code, _, err = run(capsys, "update", "--listing", str(empty))
    assert code == 1 and "names no wheels" in err
    with serve_index(tmp_path) as served:
        url = served.url
    monkeypatch.setenv("ENVSETUP_ALLOW_INSECURE_INDEX", "1")  # the opt-in as nox/tox take it
    code, _, err = run(capsys, "update", "--listing", f"{url}/whl/torch/", "--timeout", "5")
    assert code == 1 and "could not read the index listing" in err and "Traceback" not in err


def test_real_cli_process_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from envsetup.cli import main; rc = main(['matrix', '--torch', '2.5.1']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    env = {**os.environ, "ENVSETUP_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "2.5.1" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "envsetup", "matrix", "--variant", "bogus"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("envsetup: error: --variant 'bogus'")


def test_other_verbs_do_not_pay_for_the_listing_reader() -> None:
    """Every CLI start builds the whole parser; `matrix update`'s reader loads only when used."""
    code = (
        "import sys; from envsetup.cli import build_parser; build_parser(); "
        "print('envsetup.matrices.index_listing' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
