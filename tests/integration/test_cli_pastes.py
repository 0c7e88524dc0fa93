"""Pastes as people paste them, planned for the machine they describe; a driver updated
without a reboot, and a GPU that cannot be read, are never planned as a CPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsetup.cli import main

SAMPLES = Path(__file__).parents[1] / "data" / "nvidia-smi"
PIP = ["--installer", "pip", "--python", "3.11"]

SPLIT_HEADER = "NVIDIA-SMI 517.00\nDriver Version: 517.00\nCUDA Version: 11.7\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn\u2018t\ncommunicate with the NVIDIA driver. Make "
    "sure that the latest NVIDIA driver is installed and running.\n"
)
MIG_ONLY = """\
+-----------------------------------------------------------------------------+
| MIG devices:                                                                |
+------------------+----------------------+-----------+-----------------------+
| GPU  GI  CI  MIG |         Memory-Usage |        Vol|         Shared        |
|==================+======================+===========+=======================|
|  0    1   0   0  |     13MiB / 20096MiB | 42      0 |  3   0    2    0    0 |
+------------------+----------------------+-----------+-----------------------+
|  0    2   0   1  |     13MiB / 20096MiB | 42      0 |  3   0    2    0    0 |
+------------------+----------------------+-----------+-----------------------+
"""
MISMATCH = (
    "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.124\n"
)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def paste(tmp_path: Path, text: str) -> str:
    path = tmp_path / "smi.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("sample", "platform", "wsl"),
    [
        ("win-610-driver-model-table.txt", "windows-amd64", False),
        ("win-517-tcc-wddm-2gpu-truncated.txt", "windows-amd64", False),
        ("wsl-510-q-wddm-truncated.txt", "linux-x86_64", True),
    ],
)
def test_a_pasted_machines_platform_is_inferred_and_said(
    capsys: pytest.CaptureFixture[str], sample: str, platform: str, wsl: bool
) -> None:
    code, out, _ = cli(capsys, "detect", "--nvidia-smi-output", str(SAMPLES / sample), "--json")
    document = json.loads(out)
    assert code == 0
    assert f"{document['platform']['os']}-{document['platform']['arch']}" == platform
    assert document["platform"]["wsl"] is wsl
    [evidence] = [item for item in document["evidence"] if item["fact"] == "platform"]
    assert evidence["source"].startswith("the paste (")
    code, out, _ = cli(capsys, "detect", "--nvidia-smi-output", str(SAMPLES / sample))
    assert out.startswith(f"platform    {platform}") and "(from the paste (" in out.splitlines()[0]


def test_a_windows_paste_plans_windows_wheels_and_platform_overrides(
    capsys: pytest.CaptureFixture[str],
) -> None:
    smi = str(SAMPLES / "win-610-driver-model-table.txt")
    code, out, _ = cli(capsys, "plan", "--nvidia-smi-output", smi, *PIP, "--json")
    assert code == 0 and json.loads(out)["platform"] == "windows-amd64"
    code, out, _ = cli(
        capsys, "plan", "--nvidia-smi-output", smi, *PIP, "--platform", "linux-x86_64", "--json"
    )
    assert code == 0 and json.loads(out)["platform"] == "linux-x86_64"
    code, out, _ = cli(
        capsys, "detect", "--nvidia-smi-output", smi, "--platform", "linux-aarch64", "--json"
    )
    assert json.loads(out)["platform"]["arch"] == "aarch64"


def test_split_header_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "detect", "--nvidia-smi-output", paste(tmp_path, SPLIT_HEADER))
    assert code == 0
    assert "driver      NVIDIA 517.00" in out and "max CUDA    11.7" in out


def test_no_driver_with_a_typographic_apostrophe_split_over_two_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = cli(capsys, "detect", "--nvidia-smi-output", paste(tmp_path, NO_DRIVER))
    assert code == 0
    assert "[no_driver]" in out


def test_a_paste_of_only_the_mig_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    smi = paste(tmp_path, MIG_ONLY)
    code, out, _ = cli(capsys, "detect", "--nvidia-smi-output", smi, "--json")
    assert code == 0
    [gpu] = json.loads(out)["gpus"]
    assert gpu["index"] == 0 and gpu["mig_enabled"] is True and len(gpu["mig_devices"]) == 2


def test_driver_library_mismatch_plans_for_the_library_after_a_reboot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    smi = paste(tmp_path, MISMATCH)
    code, out, err = cli(capsys, "plan", "--nvidia-smi-output", smi, *PIP, "--platform",
                         "linux-x86_64")  # fmt: skip
    assert code == 0
    assert "/whl/cu" in out and "+cpu" not in out
    assert "reboot first" in err and "570.124" in err


def test_an_unreadable_gpu_is_not_planned_as_cpu(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    smi = paste(tmp_path, NO_DRIVER)
    code, out, err = cli(capsys, "plan", "--nvidia-smi-output", smi, *PIP)
    assert code == 1 and out == ""
    assert "seems present but could not be read" in err
    assert "--backend cpu" in err and "--driver VERSION" in err
    code, out, _ = cli(capsys, "plan", "--nvidia-smi-output", smi, *PIP, "--backend", "cpu")
    assert code == 0 and "+cpu" in out  # asked for: fine


def test_detect_shows_probe_timings_only_with_verbose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVSETUP_CUDA_DRIVER_VERSION", "550.54.14")
    _, out, _ = cli(capsys, "detect")
    assert "probes " not in out
    _, out, _ = cli(capsys, "detect", "-v")
    assert "probes      " in out and " ms" in out


def test_detect_json_evidence_keeps_value_types(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "detect", "--nvidia-smi-output", str(SAMPLES / "h100-580-q.txt"), "--json"
    )
    values = {item["fact"]: item["value"] for item in json.loads(out)["evidence"]}
    assert (
        code == 0 and isinstance(values["gpus"], int) and isinstance(values["driver_version"], str)
    )


def test_a_uv_torch_backend_override_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_TORCH_BACKEND", "cu121")
    monkeypatch.setenv("ENVSETUP_CUDA_DRIVER_VERSION", "550.54.14")
    code, out, _ = cli(capsys, "plan", *PIP, "--torch", "2.5.1", "--json")
    reasons = json.loads(out)["reasons"]
    assert code == 0 and "backend cu121 forced by env UV_TORCH_BACKEND" in reasons
