"""AMD gfx targets the user gives (--amd-arch, UV_AMD_GPU_ARCHITECTURE) for a machine envsetup
cannot probe, checked against the ROCm gfx lists in matrices/archs.toml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsetup.cli import main
from envsetup.detect import detect
from envsetup.detect.findings import Findings
from envsetup.detect.overrides import normalise_gfx, read_overrides
from envsetup.errors import UsageError

TARGET = ["--platform", "linux-x86_64", "--python", "3.12"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("UV_AMD_GPU_ARCHITECTURE", "ENVSETUP_AMD_GPU_ARCHITECTURE"):
        monkeypatch.delenv(variable, raising=False)


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gfx1100", ("gfx1100",)),
        ("GFX90A", ("gfx90a",)),
        ("gfx90a:sramecc+:xnack-", ("gfx90a",)),  # rocminfo's spelling
        ("gfx90a, gfx942", ("gfx90a", "gfx942")),
    ],
)
def test_gfx_spellings(text: str, expected: tuple[str, ...]) -> None:
    assert normalise_gfx(text) == expected


@pytest.mark.parametrize("text", ["", "sm_86", "1100", "gfx", "gfx1100;rm -rf /"])
def test_bad_gfx_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_gfx(text)


def test_uv_variable_is_a_fallback_for_ours() -> None:
    findings = Findings()
    chosen = read_overrides(
        {"UV_AMD_GPU_ARCHITECTURE": "gfx1100", "ENVSETUP_AMD_GPU_ARCHITECTURE": "gfx942"},
        findings,
    )
    assert chosen["amd_arch"].value == ("gfx942",)
    assert any("UV_AMD_GPU_ARCHITECTURE=gfx1100 is ignored" in w for w in findings.warnings)


def test_malformed_values() -> None:
    findings = Findings()
    assert "amd_arch" not in read_overrides({"UV_AMD_GPU_ARCHITECTURE": "rdna3"}, findings)
    assert any("is not AMD gfx targets" in w for w in findings.warnings)
    with pytest.raises(UsageError, match="ENVSETUP_AMD_GPU_ARCHITECTURE='rdna3'"):
        read_overrides({"ENVSETUP_AMD_GPU_ARCHITECTURE": "rdna3"}, Findings())


def test_detection_takes_the_variable_for_an_unprobeable_machine(tmp_path: Path) -> None:
    machine = detect(root=tmp_path, environ={"UV_AMD_GPU_ARCHITECTURE": "gfx1100"})
    amd = [gpu for gpu in machine.gpus if gpu.vendor == "amd"]
    assert [gpu.arch for gpu in amd] == ["gfx1100"]


def test_uv_variable_plans_a_rocm_build_listing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_AMD_GPU_ARCHITECTURE", "gfx1100")
    code, out, err = plan(capsys, *TARGET, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["variant"].startswith("rocm")
    assert any("covers gfx1100" in reason for reason in document["reasons"])


def test_amd_arch_flag_repeatable_and_comma_separated(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, *TARGET, "--amd-arch", "gfx90a,gfx942", "--amd-arch", "gfx1100")
    assert code == 0, err
    assert "covers gfx1100, gfx90a, gfx942" in err


def test_old_rocm_lacking_the_arch_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    """gfx1151 (Strix Halo) is listed only by recent ROCm variants: the plan picks one."""
    code, out, err = plan(capsys, *TARGET, "--amd-arch", "gfx1151", "--json")
    assert code == 0, err
    assert any("gfx1151" in reason for reason in json.loads(out)["reasons"])


def test_an_arch_no_rocm_build_lists_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, *TARGET, "--amd-arch", "gfx1036")
    assert code == 1
    assert "no ROCm build of torch lists gfx1036 among its gfx targets" in err
    assert "rocminfo" in err


def test_rocm_without_a_known_gfx_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(capsys, *TARGET, "--backend", "rocm", "--gpu", "none", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["variant"].startswith("rocm")
    assert any(
        "gfx targets were not checked" in warning and "--amd-arch" in warning
        for warning in document["warnings"]
    )


def test_rocm_without_a_known_gfx_is_refused_under_strict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = plan(capsys, *TARGET, "--backend", "rocm", "--gpu", "none", "--policy", "strict")
    assert code == 1
    assert "gfx targets were not checked" in err


def test_gpu_none_contradicts_amd_arch(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, *TARGET, "--gpu", "none", "--amd-arch", "gfx1100")
    assert code == 2
    assert "--gpu none contradicts --amd-arch" in err


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, *TARGET, "--amd-arch", "navi31")
    assert code == 2
    assert "navi31" in err and "--amd-arch gfx1100" in err
