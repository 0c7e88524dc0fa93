"""`envsetup verify` diagnoses each seed error from a fake torch build, in a real interpreter.

The fake wheels are unpacked onto PYTHONPATH (no venv needed: fast), the check runs in a real
`python -c` subprocess, and FAKE_TORCH_* variables play the GPU and driver the build meets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from support.fake_index import FakeBuild, build_wheels, isolated_env, run_envsetup, unpack

from envsetup.install.argv import install_argv
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.model.plan import Request
from envsetup.resolve import first_fit
from envsetup.verify import Expectation, verify
from unit.test_terminal import no_controls

H100 = "NVIDIA H100 80GB HBM3:81079:9.0"
RTX5090 = "NVIDIA GeForce RTX 5090:32607:12.0"
PLATFORM = Platform("linux", "x86_64", f"{sys.version_info[0]}.{sys.version_info[1]}")


def gpu_machine(driver: str, cuda: str, cc: str, name: str) -> Machine:
    return Machine(
        platform=PLATFORM,
        driver_version=driver,
        cuda_version=cuda,
        gpus=(Gpu(index=0, name=name, compute_capability=cc),),
    )


CPU_MACHINE = Machine(platform=PLATFORM)
H100_MACHINE = gpu_machine("580.159.04", "13.0", "9.0", "NVIDIA H100 80GB HBM3")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("wheels")
    builds = {
        "cpu": FakeBuild("2.5.1", "cpu"),
        "cu118": FakeBuild("2.5.1", "cu118"),
        "cu121": FakeBuild("2.5.1", "cu121"),
        "cu124": FakeBuild("2.5.1", "cu124"),
        "cu130": FakeBuild("2.9.0", "cu130"),
    }
    return {key: build_wheels(build, root / key) for key, build in builds.items()}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The interpreter the checks run in: a venv of this Python with nothing installed, so the
    fakes on PYTHONPATH are the only torch family it sees. Running them in this interpreter
    would let a real torch, torchvision or torchaudio installed next to pytest (a developer's
    GPU machine) answer for a package a test left out."""
    folder = tmp_path_factory.mktemp("target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    return str(python)


@pytest.fixture
def installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wheels: dict[str, dict[str, Path]]
) -> Callable[..., Path]:
    """installed("cpu", torchvision="cu121"): unpack those wheels onto this test's PYTHONPATH."""
    for key in list(os.environ):
        if key.startswith(("FAKE_TORCH_", "CUDA_VISIBLE")):
            monkeypatch.delenv(key)

    def install(torch: str | None, **companions: str) -> Path:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        if torch is not None:
            unpack(wheels[torch]["torch"], site)
        for name, key in companions.items():
            unpack(wheels[key][name], site)
        monkeypatch.setenv("PYTHONPATH", str(site))
        return site

    return install


def by_name(report: object) -> dict[str, object]:
    return {check.name: check for check in report.checks}  # type: ignore[attr-defined]


def planned(machine: Machine, torch: str | None, installed: str, python: str) -> str:
    """The command the planner gives for `machine` when `installed` is the torch in place: the
    installed release where it fits this Python, else the newest that does (Python 3.9 has no
    torch 2.9 wheels, for one)."""
    requests = [Request(torch=torch), Request()] if torch else [Request()]
    plan = first_fit(machine, requests, installed={"torch": installed})
    assert plan is not None
    return shlex.join(install_argv(plan, python=python))


def test_cpu_build_on_cpu_machine_passes_every_check(installed, target: str) -> None:
    installed("cpu", torchvision="cpu", torchaudio="cpu")
    report = verify(target, machine=CPU_MACHINE)
    assert report.ok, report.failures
    names = [check.name for check in report.checks]
    assert names == [
        "import",
        "build",
        "gpu_build",
        "companion:torchvision",
        "companion:torchaudio",
        "round_trip:cpu",
        "devices",
    ]
    assert report.torch == "2.5.1+cpu" and report.variant == "cpu" and report.cuda is None
    assert "compiled ops (nms) load" in by_name(report)["companion:torchvision"].detail
    assert all(check.fix is None for check in report.checks)
    assert "torch" not in sys.modules  # the check ran in the target interpreter, not here


def test_cpu_build_on_gpu_machine_is_torch_not_compiled_with_cuda(installed, target: str) -> None:
    installed("cpu")
    machine = gpu_machine("550.54.14", "12.4", "8.6", "NVIDIA GeForce RTX 3090")
    report = verify(target, machine=machine)
    assert not report.ok
    check = by_name(report)["gpu_build"]
    assert not check.ok
    assert "Torch not compiled with CUDA enabled" in check.detail
    assert "NVIDIA GeForce RTX 3090" in check.detail
    # The fix is the planner's exact command for this machine, same torch release.
    expected = planned(machine, "==2.5.1", "2.5.1+cpu", target)
    assert expected in check.fix
    assert "--index-url https://download.pytorch.org/whl/cu12" in check.fix


def test_driver_too_old_for_torch_cuda_is_reported_with_torchs_own_message(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("cu130")
    monkeypatch.setenv("FAKE_TORCH_GPUS", "NVIDIA A100-SXM4-80GB:81920:8.0")
    monkeypatch.setenv("FAKE_TORCH_DRIVER_CUDA", "12.2")
    machine = gpu_machine("535.104.05", "12.2", "8.0", "NVIDIA A100-SXM4-80GB")
    report = verify(target, machine=machine)
    check = by_name(report)["driver"]
    assert not check.ok
    assert "found version 12020" in check.detail
    assert "needs CUDA 13.0" in check.detail and "supports CUDA ≤ 12.2" in check.detail
    assert check.fix.startswith("update the NVIDIA driver, or install")
    assert planned(machine, "==2.9.0", "2.9.0+cu130", target) in check.fix
    assert "/whl/cu12" in check.fix
    assert by_name(report)["devices"].ok  # no --require-gpu: a CPU fallback is not a failure
    assert "too old" in by_name(report)["devices"].detail


def test_driver_below_torch_cuda_without_a_gpu_in_sight_is_predicted_from_machine_facts(
    installed, target: str
) -> None:
    installed("cu130")  # no FAKE_TORCH_GPUS: torch itself cannot tell
    machine = gpu_machine("535.104.05", "12.2", "8.0", "NVIDIA A100-SXM4-80GB")
    check = by_name(verify(target, machine=machine))["driver"]
    assert not check.ok
    assert "CUDA driver version is insufficient" in check.detail


def test_newer_minor_than_driver_passes_through_minor_version_compatibility(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("cu124")
    monkeypatch.setenv("FAKE_TORCH_GPUS", H100)
    monkeypatch.setenv("FAKE_TORCH_DRIVER_CUDA", "12.2")
    report = verify(
        target, machine=gpu_machine("535.104.05", "12.2", "9.0", "NVIDIA H100 80GB HBM3")
    )
    check = by_name(report)["driver"]
    assert check.ok and "minor-version compatibility" in check.detail
    assert report.ok


def test_same_major_below_the_minor_compat_floor_is_driver_insufficient(
    installed, target: str
) -> None:
    """Driver 450.36.06 reports CUDA 11.0 but is below CUDA 11's minor-version-compatibility
    floor (450.80.02): a cu118 build cannot run there, as the planner also says."""
    installed("cu118")
    machine = gpu_machine("450.36.06", "11.0", "8.0", "NVIDIA A100-SXM4-40GB")
    check = by_name(verify(target, machine=machine))["driver"]
    assert not check.ok
    assert "cu118 needs driver ≥ 450.80.02" in check.detail
    assert "update the NVIDIA driver" in check.fix


def test_gpu_without_kernels_in_the_wheel_is_no_kernel_image(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("cu121")
    monkeypatch.setenv("FAKE_TORCH_GPUS", RTX5090)
    machine = gpu_machine("575.51.03", "12.9", "12.0", "NVIDIA GeForce RTX 5090")
    report = verify(target, machine=machine)
    checks = by_name(report)
    assert not checks["arch"].ok
    assert "NVIDIA GeForce RTX 5090 (sm_120)" in checks["arch"].detail
    assert "sm_90" in checks["arch"].detail and "no kernel image" in checks["arch"].detail
    assert not checks["round_trip:cuda:0"].ok
    assert "no kernel image is available" in checks["round_trip:cuda:0"].detail
    assert checks["round_trip:cpu"].ok
    assert "/whl/cu12" in checks["arch"].fix and "torch==" in checks["arch"].fix
    assert (
        planned(machine, None, "2.5.1+cu121", target) in checks["arch"].fix
    )  # 2.5.1 has no sm_120 build


def test_simulated_gpu_round_trip_and_devices(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("cu121", torchvision="cu121")
    monkeypatch.setenv("FAKE_TORCH_GPUS", f"{H100};{H100}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    machine = gpu_machine("535.104.05", "12.2", "9.0", "NVIDIA H100 80GB HBM3")
    report = verify(target, machine=machine, require_gpu=True)
    assert report.ok, report.failures
    checks = by_name(report)
    assert checks["round_trip:cuda:0"].ok
    assert checks["devices"].detail == "1 GPU(s) usable: cuda:0 NVIDIA H100 80GB HBM3"
    assert checks["arch"].detail.startswith("kernels for every GPU (NVIDIA H100 80GB HBM3 sm_90)")
    assert report.devices == (
        {"device": "cuda:0", "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0],
         "memory_mib": 81079},
    )  # fmt: skip


def test_require_gpu_fails_without_a_usable_gpu(installed, target: str) -> None:
    installed("cu121")
    report = verify(target, machine=CPU_MACHINE, require_gpu=True)
    check = by_name(report)["devices"]
    assert not check.ok
    assert "Found no NVIDIA driver" in check.detail and "--require-gpu" in check.detail


def test_require_gpu_says_when_cuda_visible_devices_hides_every_gpu(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("cu121")
    monkeypatch.setenv("FAKE_TORCH_GPUS", H100)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    machine = replace(
        gpu_machine("535.104.05", "12.2", "9.0", "NVIDIA H100 80GB HBM3"), visible_gpus=()
    )
    check = by_name(verify(target, machine=machine, require_gpu=True))["devices"]
    assert not check.ok
    assert "CUDA_VISIBLE_DEVICES='' hides all 1 GPU(s)" in check.detail
    assert check.fix.startswith("unset CUDA_VISIBLE_DEVICES")  # not "install a CPU build"


def test_companion_built_for_another_torch_is_operator_does_not_exist(
    installed, target: str
) -> None:
    installed("cpu", torchvision="cu121", torchaudio="cu121")
    report = verify(target, machine=CPU_MACHINE)
    vision = by_name(report)["companion:torchvision"]
    assert not vision.ok
    assert "operator torchvision::nms does not exist" in vision.detail
    assert "built for torch 2.5.1+cu121" in vision.detail and "2.5.1+cpu" in vision.detail
    assert vision.fix.startswith("reinstall torch and torchvision as a pair from one index: ")
    assert "--index-url https://download.pytorch.org/whl/cpu" in vision.fix
    assert "torch==2.5.1+cpu torchaudio==2.5.1+cpu torchvision==0.20.1+cpu" in vision.fix
    audio = by_name(report)["companion:torchaudio"]
    assert not audio.ok and "undefined symbol" in audio.detail


def test_expectations_compare_release_and_variant(installed, target: str) -> None:
    installed("cpu")
    report = verify(target, machine=CPU_MACHINE, expect=Expectation.parse("torch==2.4.1", "cu121"))
    check = by_name(report)["expect"]
    assert not check.ok
    assert check.detail == (
        "torch 2.5.1+cpu does not match ==2.4.1; variant cpu is not the expected cu121"
    )
    good = verify(target, machine=CPU_MACHINE, expect=Expectation.parse("2.5.1", "cpu"))
    assert by_name(good)["expect"].ok


def test_expect_reads_versions_as_torch_does() -> None:
    """`--expect 2.5` means any 2.5.x, as `--torch 2.5` does; specifiers and names work too."""
    assert Expectation.parse("2.5", None).torch == "==2.5.*"
    assert Expectation.parse("2.5.1", None).torch == "==2.5.1"
    assert Expectation.parse("torch>=2.4", None).torch == ">=2.4"


def test_torch_missing_is_one_failed_check_with_the_install_command(installed, target: str) -> None:
    installed(None)
    report = verify(target, machine=CPU_MACHINE)
    assert [check.name for check in report.checks] == ["import"]
    check = report.checks[0]
    assert not check.ok and "No module named 'torch'" in check.detail
    assert "--index-url https://download.pytorch.org/whl/cpu" in check.fix
    assert report.to_json()["torch"] is None


def test_cli_json_document_and_exit_codes(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = installed("cpu")
    env = isolated_env({"PYTHONPATH": str(site)})
    result = run_envsetup("verify", "--json", "--gpu", "none", "--python", target, env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"ok", "python", "torch", "variant", "cuda", "devices", "checks"}
    assert document["ok"] is True and document["torch"] == "2.5.1+cpu"
    assert document["bench"] is None
    assert all(set(check) == {"name", "ok", "detail", "fix"} for check in document["checks"])

    failing = run_envsetup(
        "verify",
        "--python",
        target,
        "--driver",
        "550.54.14",
        "--cuda",
        "12.4",
        "--compute-cap",
        "8.6",
        env=env,
    )
    assert failing.returncode == 1
    assert "FAIL  gpu_build" in failing.stdout and "fix: install the build" in failing.stdout
    assert "1 of 5 checks failed" in failing.stdout


def test_cli_human_report_shows_escapes_in_device_names(
    installed, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's device name reaches the report from another process; before, its escape
    sequences (clear screen, a C1 CSI, a bell) went to the terminal as they were."""
    site = installed("cu121")
    evil = "NVIDIA \x1b[2J\x9b1AH100\x07:81079:9.0"
    env = isolated_env({"PYTHONPATH": str(site), "FAKE_TORCH_GPUS": evil})
    args = ("--driver", "580.159.04", "--cuda", "13.0", "--compute-cap", "9.0")
    result = run_envsetup("verify", "--python", target, *args, env=env)
    assert "NVIDIA \\x1b[2J\\x9b1AH100\\x07" in result.stdout, result.stdout + result.stderr
    no_controls(result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expect", "numpy==1.0"], "--expect 'numpy==1.0' is not a torch requirement"),
        (["--expect-variant", "cuda-twelve"], "unknown variant 'cuda-twelve'"),
    ],
)
def test_cli_bad_expectations_are_usage_errors(args: list[str], message: str) -> None:
    result = run_envsetup("verify", "--gpu", "none", *args, env=isolated_env())
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_missing_interpreter_is_a_clear_failure(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "python"
    result = run_envsetup("verify", "--gpu", "none", "--python", str(missing), env=isolated_env())
    assert result.returncode == 2  # a path the user typed: bad input
    assert "not found" in result.stderr or "no interpreter" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_garbled_report_is_a_clear_failure(tmp_path: Path) -> None:
    """A marker line whose JSON is cut off (a crash mid-print) was a JSONDecodeError traceback."""
    from envsetup.verify import inside as _verify_check

    python = tmp_path / "python"
    answer = f"echo '{_verify_check.MARKER}{{\"torch\": '"  # the package listing (-I) is real
    python.write_text(f'#!/bin/sh\n[ "$1" = -I ] && exec {sys.executable} "$@"\n{answer}\n')
    python.chmod(0o755)
    result = run_envsetup("verify", "--gpu", "none", "--python", str(python), env=isolated_env())
    assert result.returncode == 1, result.stderr
    assert "stopped before reporting (exit 0)" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_fix_for_a_free_threaded_python_keeps_its_t() -> None:
    """torch 2.5.1 has cp313 wheels but no cp313t: the fix for a 3.13t environment must not
    keep 2.5.1 (it did, planning for "3.13" after dropping the `t`)."""
    from envsetup.verify import planned_fix

    machine = Machine(platform=Platform("linux", "x86_64", "3.11"))
    facts = {"python": "3.13.1", "free_threaded": True, "torch": {"version": "2.5.1+cpu"}}
    fix = planned_fix("/env/bin/python", machine, facts, Expectation())
    assert "torch==2.5.1" not in fix, fix
    plain = planned_fix(
        "/env/bin/python", machine, {**facts, "free_threaded": False}, Expectation()
    )
    assert "torch==2.5.1+cpu" in plain
