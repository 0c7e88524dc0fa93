"""The pytest plugin end to end: pytester projects run with a fake `torch` on the path and, for
"GPU present", a fake `nvidia-smi` on PATH that prints the real H100 outputs from tests/data."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from support import fake_torch

from envsetup.integrations.pytest_options import Settings
from envsetup.model.machine import Gpu, Machine, Platform

pytest_plugins = ["pytester"]

HERE = Path(__file__).parents[1]
SMI_DATA = HERE / "data" / "nvidia-smi"
H100 = "NVIDIA H100 80GB HBM3:81559:9.0"
H100_MACHINE = Machine(
    platform=Platform("linux", "x86_64", "3.11"),
    driver_version="580.159.04",
    cuda_version="13.0",
    gpus=(Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "9.0"),),
)
CLEARED = (
    "ENVSETUP_",
    "FAKE_TORCH_",
    "UV_TORCH_",
    "UV_CUDA_",
    "LTT_",
    "CONDA_OVERRIDE_",
    "PYTEST_XDIST_",
)
VISIBILITY = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "PYTEST_ADDOPTS",
)


def _plugin_autoloads() -> bool:
    """Whether pytest finds the plugin through envsetup's `pytest11` entry point, which exists
    only where envsetup is installed (not where it is merely importable from PYTHONPATH)."""
    from importlib.metadata import entry_points

    found = entry_points()
    group = (
        found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", ())
    )
    return any(entry.name == "envsetup" for entry in group)


PLUGIN_AUTOLOADS = _plugin_autoloads()
#: Where envsetup is not installed, pytester runs load the plugin by its module name instead;
#: where it is, naming it again would register the module twice.
LOAD_PLUGIN = () if PLUGIN_AUTOLOADS else ("-p", "envsetup.integrations.pytest_plugin")
needs_entry_point = pytest.mark.skipif(
    not PLUGIN_AUTOLOADS,
    reason="envsetup is not installed here, so its pytest11 entry point (the name `-p envsetup` "
    "and `-p no:envsetup` refer to) does not exist; pip install it to run this test",
)


def _real_gpu() -> bool:
    from envsetup.detect import detect

    return bool(detect().gpus)


#: NVML and the driver's /proc files are probed before nvidia-smi, so on a GPU machine the real
#: GPU shows through the fake; tests that simulate the hardware run on CPU machines only.
simulated_hardware = pytest.mark.skipif(
    _real_gpu(), reason="a real GPU is detected here; the fake nvidia-smi cannot hide it"
)


class Project:
    """A pytester project plus the knobs that simulate a machine: torch build, GPUs, driver."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        for name in list(os.environ):
            if name.startswith(CLEARED) or name in VISIBILITY:
                monkeypatch.delenv(name)
        monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # restored after the test
        self.site = pytester.mkdir("site")
        self.bin = pytester.mkdir("bin")
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        outer = os.environ.get("PYTHONPATH")  # keeps envsetup importable where it is not installed
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(self.site), outer])))
        pytester.syspathinsert(self.site)
        self.imports = pytester.path / "torch-imports.log"
        monkeypatch.setenv("FAKE_TORCH_IMPORT_LOG", str(self.imports))

    def torch(
        self,
        version: str = "2.13.0+cpu",
        *,
        cuda: str | None = None,
        hip: str | None = None,
        archs: tuple[str, ...] = (),
        gpus: str = "",
        **env: str,
    ) -> None:
        """Install the fake torch `version` on a machine with `gpus` ("name:MiB:cc;...")."""
        fake_torch.install(self.site, version, cuda=cuda, hip=hip, archs=archs)
        self.monkeypatch.setenv("FAKE_TORCH_GPUS", gpus)
        for name, value in env.items():
            self.monkeypatch.setenv(f"FAKE_TORCH_{name.upper()}", value)

    def cuda_torch(self, gpus: str = H100, **options: Any) -> None:
        self.torch("2.13.0+cu130", cuda="13.0", gpus=gpus, **options)

    def nvidia_smi(self, gpus: int = 1) -> None:
        """A fake `nvidia-smi` that answers like the real H100 machine, with `gpus` GPUs."""
        rows = (SMI_DATA / "h100-580-query-gpu.csv").read_text().splitlines()
        csv = [rows[0]]
        for i in range(gpus):  # distinct index, UUID and bus id per GPU
            _, name, driver, memory, cc, uuid, bus = rows[1].split(", ")
            csv.append(
                ", ".join([str(i), name, driver, memory, cc, f"{uuid[:-1]}{i}", f"{bus[:-1]}{i}"])
            )
        (self.bin / "query.csv").write_text("\n".join(csv) + "\n")
        shutil.copy(SMI_DATA / "h100-580-table.txt", self.bin / "table.txt")
        script = self.bin / "nvidia-smi"
        script.write_text(
            '#!/bin/sh\ncase "$1" in\n'
            f'  --query-gpu=*) cat "{self.bin}/query.csv" ;;\n'
            f'  *) cat "{self.bin}/table.txt" ;;\nesac\n'
        )
        script.chmod(0o755)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:randomly", *LOAD_PLUGIN, *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        """In a fresh interpreter: for what it imports (sys.modules), and for xdist, whose local
        workers copy the sys.path the controller started with (an in-process controller would
        hide the fake torch from them)."""
        return self.pytester.runpytest_subprocess("-p", "no:randomly", *LOAD_PLUGIN, *args)

    def torch_imports(self) -> int:
        return len(self.imports.read_text().splitlines()) if self.imports.exists() else 0


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(pytester, monkeypatch)


def reasons(result: pytest.RunResult) -> list[str]:
    """Skip reasons of the in-process run, in test order, without the "Skipped: " prefix."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return [r.longrepr[2].removeprefix("Skipped: ") for r in reports if r.skipped]


def failures(result: pytest.RunResult) -> list[str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return [r.longreprtext for r in reports if r.failed]


GPU_TESTS = """
import pytest

@pytest.mark.gpu
def test_plain(device):
    assert device.type in ("cuda", "mps")

@pytest.mark.gpu(count=2)
def test_two():
    pass

def test_cpu_only():
    pass
"""


# --------------------------------------------------------------------------- registration


def test_marker_is_registered_so_strict_markers_pass(project):
    project.torch()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run("--strict-markers", "--co", "-q")
    result.assert_outcomes()
    assert result.ret == 0
    result = project.run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.gpu(count=1, min_memory=None, *): the test needs*"])


@needs_entry_point
def test_p_no_envsetup_disables_marker_fixture_header_and_options(project):
    project.torch()
    project.pytester.makepyfile(GPU_TESTS)
    # in a subprocess: in-process runs share pytest.mark's cache of known markers
    result = project.pytester.runpytest_subprocess("-p", "no:envsetup", "--strict-markers")
    assert "envsetup:" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*'gpu' not found in `markers` configuration option*"])
    result = project.run("-p", "no:envsetup")
    result.stdout.fnmatch_lines(["*fixture 'device' not found*"])
    result = project.run("-p", "no:envsetup", "--envsetup-device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --envsetup-device*"])


@needs_entry_point
def test_explicit_p_envsetup_works_without_plugin_autoload(project, monkeypatch):
    project.torch()
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project.pytester.makepyfile(GPU_TESTS)
    result = project.pytester.runpytest_subprocess("-p", "envsetup", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=2)


def test_options_are_documented_in_help(project):
    result = project.run("--help")
    result.stdout.fnmatch_lines(
        [
            "envsetup: gpu marker and device fixture:",
            "*--envsetup-device=DEVICE",
            "*device for envsetup's `device` fixture: auto*",
            "*--envsetup-gpu=MODE*envsetup's gpu-marked tests: auto*",
            "*--envsetup-pin-gpus*give each pytest-xdist worker one GPU*",
            "*envsetup_device (string)*",
            "*envsetup_gpu (string)*",
            "*envsetup_pin_gpus (bool)*",
        ]
    )


# --------------------------------------------------------------------------- header


@simulated_hardware
def test_header_is_one_line_without_gpu_or_torch(project):
    result = project.run("--co")
    result.stdout.fnmatch_lines(
        ["envsetup: no GPU detected; torch not installed; device auto → cpu; gpu tests auto"]
    )
    assert result.stdout.str().count("envsetup:") == 1


def test_header_with_h100_and_cpu_torch_warns():
    from envsetup.integrations.pytest_plugin import header_line

    line = header_line(H100_MACHINE, "2.13.0+cpu", "CPU-only build", Settings())
    assert line == (
        "envsetup: NVIDIA H100 80GB HBM3 (driver 580.159.04, CUDA ≤ 13.0); torch 2.13.0+cpu "
        "(CPU-only build); device auto → cpu; gpu tests auto; warning: torch 2.13.0+cpu "
        "(CPU-only build) cannot use the GPU"
    )


def test_header_with_two_gpus_and_cuda_torch():
    from envsetup.integrations.pytest_plugin import header_line

    two = dataclasses.replace(H100_MACHINE, gpus=H100_MACHINE.gpus * 2)
    settings = Settings(device=("all",), gpu="require")
    pinned = "xdist workers pinned to CUDA_VISIBLE_DEVICES=0,1"
    line = header_line(two, "2.13.0+cu130", "CUDA 13.0 build", settings, pinned)
    assert line == (
        "envsetup: 2x NVIDIA H100 80GB HBM3 (driver 580.159.04, CUDA ≤ 13.0); torch 2.13.0+cu130 "
        "(CUDA 13.0 build); device all; gpu tests require; xdist workers pinned to "
        "CUDA_VISIBLE_DEVICES=0,1"
    )


# --------------------------------------------------------------------------- gpu marker


@simulated_hardware
def test_gpu_tests_skip_without_gpu_with_a_reason(project):
    project.torch()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, skipped=2)
    assert (
        reasons(result)
        == ["no usable GPU: none was detected (torch 2.13.0+cpu (CPU-only build) sees none)"] * 2
    )


def test_gpu_tests_run_on_a_usable_gpu_and_list_only_unmet_conditions(project):
    project.cuda_torch()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run()
    result.assert_outcomes(passed=2, skipped=1)
    assert reasons(result) == ["gpu: needs 2 GPUs, 1 visible"]


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ("count=2", "gpu: needs 2 GPUs, 1 visible"),
        (
            'min_memory="100GiB"',
            "gpu: needs 100 GiB GPU memory, cuda:0 (NVIDIA H100 80GB HBM3) has 79.6 GiB",
        ),
        (
            'min_capability="10.0"',
            "gpu: needs compute capability 10.0, cuda:0 (NVIDIA H100 80GB HBM3) is 9.0",
        ),
        ('min_cuda="13.1"', "gpu: needs CUDA 13.1, torch 2.13.0+cu130 is a CUDA 13.0 build"),
        ('backend="rocm"', "gpu: needs a ROCm device, torch can use CUDA"),
        ('backend="mps"', "gpu: needs a MPS device, torch can use CUDA"),
        (
            'count=3, min_memory="20GiB", min_capability="8.0", min_cuda="12.1"',
            "gpu: needs 3 GPUs, 1 visible",
        ),
    ],
    ids=["count", "memory", "capability", "cuda", "rocm", "mps", "only-unmet"],
)
def test_each_marker_condition_has_its_reason(project, marker, reason):
    project.cuda_torch()
    project.pytester.makepyfile(
        f"import pytest\n\n@pytest.mark.gpu({marker})\ndef test_x():\n    pass\n"
    )
    result = project.run()
    result.assert_outcomes(skipped=1)
    assert reasons(result) == [reason]


def test_skips_are_reported_at_the_tests_location(project):
    project.cuda_torch()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run("-rs")
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_skips_*.py:*: gpu: needs 2 GPUs, 1 visible"])


def test_met_conditions_run(project):
    project.cuda_torch(gpus=f"{H100};{H100}")
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu(
            count=2, min_memory="40GiB", min_capability="8.0", min_cuda="12.1", backend="cuda"
        )
        def test_x(device):
            assert str(device) == "cuda:0"
        """
    )
    project.run().assert_outcomes(passed=1)


def test_missing_kernels_for_the_gpu_skip(project):
    project.cuda_torch(gpus="NVIDIA GeForce RTX 5090:32607:12.0", archs=("sm_80", "sm_90"))
    project.pytester.makepyfile("import pytest\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n")
    result = project.run()
    assert reasons(result) == [
        "gpu: torch 2.13.0+cu130 has no kernels for sm_120 (NVIDIA GeForce RTX 5090); "
        "its wheels hold sm_80, sm_90"
    ]


@pytest.mark.parametrize(
    ("build", "runs_on", "expected", "other", "reason"),
    [
        (
            {"version": "2.5.1+rocm6.2", "hip": "6.2", "gpus": "AMD Instinct MI300X:196592:9.4"},
            'backend="rocm"',
            "cuda:0",
            'backend="cuda"',
            "gpu: needs a CUDA device, torch can use ROCm",
        ),
        (
            {"version": "2.13.0", "mps": "1"},
            'backend="mps"',
            "mps",
            "count=2",
            "gpu: needs 2 GPUs, MPS is one device",
        ),
    ],
    ids=["rocm", "mps"],
)
def test_rocm_and_mps_backends(project, build, runs_on, expected, other, reason):
    project.torch(**build)
    project.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.gpu({runs_on})
        def test_runs(device):
            assert str(device) == {expected!r}

        @pytest.mark.gpu({other})
        def test_skipped():
            pass
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, skipped=1)
    assert reasons(result) == [reason]


def test_invalid_marker_arguments_are_a_usage_error_naming_each_test(project):
    project.torch()
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu(count=0)
        def test_zero():
            pass

        @pytest.mark.gpu(min_memory="lots")
        @pytest.mark.parametrize("n", [1, 2])
        def test_memory(n):
            pass

        @pytest.mark.gpu(backend="tpu")
        def test_backend():
            pass

        @pytest.mark.gpu(min_mem="1GiB")
        def test_typo():
            pass
        """
    )
    result = project.run("--envsetup-gpu", "auto")  # the suite says the marker is envsetup's
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_invalid_marker_arguments_are_a_usage_error_naming_each_test.py::"
            "test_zero: invalid @pytest.mark.gpu: count=0 must be a positive integer",
            "*::test_memory: invalid @pytest.mark.gpu: min_memory='lots' is not a size; "
            "expected e.g. '20GiB'*",
            "*::test_backend: invalid @pytest.mark.gpu: backend='tpu'; "
            "expected one of cuda, rocm, mps",
            "*::test_typo: invalid @pytest.mark.gpu: unknown argument 'min_mem'; "
            "expected count, min_memory*",
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert result.stderr.str().count("test_memory") == 1  # one line per test, not per parameter


def test_class_marker_applies_to_its_methods(project):
    project.torch()
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu(count=4)
        class TestMulti:
            def test_a(self):
                pass
        """
    )
    result = project.run()
    result.assert_outcomes(skipped=1)


# --------------------------------------------------------------------------- GPU present, unusable


def h100_fix() -> str:
    """The install the planner gives the fake H100 (driver 580.159.04, CUDA 13.0, sm_90) for
    this Python: torch 2.13.0 where it has wheels, else the newest release that does (Python
    3.9 has none for 2.13)."""
    from envsetup.detect.host import current_platform
    from envsetup.install.argv import install_argv
    from envsetup.model.machine import Gpu, Machine
    from envsetup.model.plan import Request
    from envsetup.resolve import first_fit

    gpu = Gpu(0, "NVIDIA H100 80GB HBM3", compute_capability="9.0")
    machine = Machine(current_platform(), "580.159.04", "13.0", gpus=(gpu,))
    requests = [Request(torch="==2.13.0"), Request()]
    plan = first_fit(machine, requests, installed={"torch": "2.13.0+cpu"})
    assert plan is not None
    return shlex.join(install_argv(plan, python=sys.executable)[1:])


@simulated_hardware
def test_gpu_present_but_cpu_torch_says_why_and_how_to_fix(project):
    project.torch()
    project.nvidia_smi()
    project.pytester.makepyfile("import pytest\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n")
    result = project.run()
    result.assert_outcomes(skipped=1)
    [reason] = reasons(result)
    assert reason.startswith(
        "NVIDIA H100 80GB HBM3 present (driver 580.159.04, CUDA ≤ 13.0), but torch 2.13.0+cpu is a "
        "CPU-only build — fix: "
    )
    assert reason.endswith(h100_fix())


@simulated_hardware
def test_cuda_torch_newer_than_the_driver_is_explained(project, monkeypatch):
    project.cuda_torch(driver_cuda="12.2")  # the fake runtime refuses, like an old driver does
    project.nvidia_smi()
    monkeypatch.setenv("ENVSETUP_CUDA_VERSION", "12.2")
    monkeypatch.setenv("ENVSETUP_CUDA_DRIVER_VERSION", "535.104.05")
    project.pytester.makepyfile("import pytest\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n")
    [reason] = reasons(project.run())
    assert (
        "(driver 535.104.05, CUDA ≤ 12.2), but torch 2.13.0+cu130 is built for CUDA 13.0" in reason
    )
    assert "newer than the driver supports — fix: " in reason
    assert "--index-url https://download.pytorch.org/whl/cu12" in reason


# --------------------------------------------------------------------------- --gpu modes


@simulated_hardware
def test_gpu_require_fails_the_run_on_cpu_only_torch(project):
    project.torch()
    project.nvidia_smi()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run("--envsetup-gpu", "require")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=2)
    present = "*gpu mode require (from --envsetup-gpu): NVIDIA H100 80GB HBM3 present*"
    result.stdout.fnmatch_lines([f"{present}CPU-only build — fix:*{h100_fix()}"])


def test_gpu_require_from_env_still_skips_unmet_hardware_conditions(project, monkeypatch):
    project.cuda_torch()
    monkeypatch.setenv("ENVSETUP_GPU", "require")
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2, skipped=1)


def test_gpu_skip_skips_without_importing_torch(project):
    project.cuda_torch()
    project.pytester.makepyfile(GPU_TESTS.replace("def test_plain(device)", "def test_plain()"))
    result = project.run("--envsetup-gpu", "skip")
    result.assert_outcomes(passed=1, skipped=2)
    assert set(reasons(result)) == {"gpu tests skipped by gpu mode skip (--envsetup-gpu)"}
    assert project.torch_imports() == 0


def test_gpu_only_deselects_the_rest(project):
    project.cuda_torch()
    project.pytester.makeini("[pytest]\nenvsetup_gpu = only\n")
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, skipped=1, deselected=1)


@pytest.mark.parametrize(
    ("args", "env", "ini", "message"),
    [
        (("--envsetup-gpu", "maybe"), {}, "", "invalid gpu mode 'maybe' (from --envsetup-gpu)"),
        ((), {}, "envsetup_gpu = yes", "invalid gpu mode 'yes' (from ini envsetup_gpu)"),
        (("--envsetup-device", "gpu0"), {}, "", "invalid device 'gpu0' (from --envsetup-device)"),
        ((), {}, "envsetup_device = cuda:x", "invalid device 'cuda:x' (from ini envsetup_device)"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_source(
    project, monkeypatch, args, env, ini, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    project.pytester.makeini(f"[pytest]\n{ini}\n")
    project.pytester.makepyfile("def test_x():\n    pass\n")
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: envsetup: {message}; expected*"])


# --------------------------------------------------------------------------- device fixture

DEVICE_TEST = """
def test_device(device):
    print("DEVICE", device)
"""


def printed_devices(result: pytest.RunResult) -> list[str]:
    return re.findall(r"DEVICE (\S+)", result.stdout.str())


@pytest.mark.parametrize(
    ("setup", "args", "device"),
    [
        ("cpu", (), "cpu"),
        ("cuda", (), "cuda:0"),
        ("mps", (), "mps"),
        ("cuda", ("--envsetup-device", "cpu"), "cpu"),
        ("two", ("--envsetup-device", "cuda:1"), "cuda:1"),
        ("two", ("--envsetup-device", "cuda"), "cuda:0"),
    ],
)
def test_device_fixture(project, setup, args, device):
    if setup == "cpu":
        project.torch()
    elif setup == "mps":
        project.torch("2.13.0", mps="1")
    else:
        project.cuda_torch(gpus=H100 if setup == "cuda" else f"{H100};{H100}")
    project.pytester.makepyfile(DEVICE_TEST)
    result = project.run("-s", *args)
    result.assert_outcomes(passed=1)
    assert printed_devices(result) == [device]


def test_device_setting_precedence_cli_env_ini(project, monkeypatch):
    project.cuda_torch(gpus=f"{H100};{H100}")
    project.pytester.makeini("[pytest]\nenvsetup_device = cuda:1\n")
    project.pytester.makepyfile(DEVICE_TEST)
    assert printed_devices(project.run("-s")) == ["cuda:1"]
    monkeypatch.setenv("ENVSETUP_DEVICE", "cpu")
    assert printed_devices(project.run("-s")) == ["cpu"]
    assert printed_devices(project.run("-s", "--envsetup-device", "cuda")) == ["cuda:0"]


@simulated_hardware
def test_forced_device_torch_cannot_use_fails_with_the_reason(project, monkeypatch):
    project.torch()
    project.nvidia_smi()
    monkeypatch.setenv("ENVSETUP_DEVICE", "cuda")
    project.pytester.makepyfile(DEVICE_TEST)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cuda was asked for, but torch sees 0 CUDA device(s) (from ENVSETUP_DEVICE): "
            "NVIDIA H100 80GB HBM3 present*CPU-only build — fix:*"
        ]
    )


def test_device_cpu_skips_gpu_tests(project):
    project.cuda_torch()
    project.pytester.makepyfile(GPU_TESTS)
    result = project.run("--envsetup-device", "cpu")
    result.assert_outcomes(passed=1, skipped=2)
    assert set(reasons(result)) == {
        "gpu test, but device cpu (from --envsetup-device) forces the CPU"
    }


def test_device_list_parametrizes_with_stable_ids(project):
    project.cuda_torch()
    project.pytester.makepyfile(
        """
        import pytest

        def test_any(device):
            pass

        @pytest.mark.gpu
        def test_gpu(device):
            assert device.type == "cuda"

        @pytest.mark.parametrize("device", ["meta"])
        def test_own(device):
            assert device == "meta"

        def test_none():
            pass
        """
    )
    result = project.run("--envsetup-device", "cpu,cuda:0", "-v")
    result.stdout.fnmatch_lines_random(
        [
            "*::test_any[[]cpu[]] PASSED*",
            "*::test_any[[]cuda:0[]] PASSED*",
            "*::test_gpu[[]cuda:0[]] PASSED*",
            "*::test_own[[]meta[]] PASSED*",
            "*::test_none PASSED*",
        ]
    )
    result.assert_outcomes(passed=5)


@simulated_hardware
def test_device_all_uses_the_probes_and_skips_what_torch_cannot_use(project):
    project.torch()  # CPU torch on a two-GPU machine
    project.nvidia_smi(gpus=2)
    project.pytester.makepyfile(DEVICE_TEST)
    result = project.run("--envsetup-device", "all", "-v")
    result.stdout.fnmatch_lines_random(
        [
            "*::test_device[[]cpu[]] PASSED*",
            "*::test_device[[]cuda:0[]] SKIPPED*",
            "*::test_device[[]cuda:1[]] SKIPPED*",
        ]
    )
    assert reasons(result)[0].startswith(
        "cuda:0 was asked for, but torch sees 0 CUDA device(s) (from device all): "
        "2x NVIDIA H100 80GB HBM3 present (driver 580.159.04, CUDA ≤ 13.0), but torch 2.13.0+cpu "
        "is a CPU-only build — fix: "
    )


@simulated_hardware
def test_device_all_without_gpus_is_just_cpu(project):
    project.torch()
    project.pytester.makepyfile(DEVICE_TEST)
    result = project.run("--envsetup-device", "all", "-v")
    result.stdout.fnmatch_lines(["*::test_device[[]cpu[]] PASSED*"])
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------- torch stays unimported

SYS_MODULES_PROBE = """
import sys

def pytest_sessionfinish(session):
    with open("torch-in-sys-modules.txt", "w") as out:
        out.write(str("torch" in sys.modules))
"""


@simulated_hardware
def test_a_suite_without_gpu_tests_never_imports_torch(project):
    project.cuda_torch()
    project.nvidia_smi()
    project.pytester.makeconftest(SYS_MODULES_PROBE)
    project.pytester.makepyfile("\n".join(f"def test_{i}():\n    pass\n" for i in range(20)))
    result = project.run_subprocess()
    result.assert_outcomes(passed=20)
    result.stdout.fnmatch_lines(["envsetup: no GPU detected*"])  # cheap probes: no nvidia-smi
    assert (project.pytester.path / "torch-in-sys-modules.txt").read_text() == "False"
    assert project.torch_imports() == 0


def test_torch_is_imported_once_when_gpu_tests_and_device_run(project):
    project.cuda_torch()
    project.pytester.makeconftest(SYS_MODULES_PROBE)
    project.pytester.makepyfile(GPU_TESTS + DEVICE_TEST)
    result = project.run_subprocess()
    result.assert_outcomes(passed=3, skipped=1)
    assert (project.pytester.path / "torch-in-sys-modules.txt").read_text() == "True"
    assert project.torch_imports() == 1


def test_importing_the_plugin_imports_no_torch_and_no_probe(project):
    project.cuda_torch()
    code = (
        "import sys, envsetup.integrations.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or 'detect' in m))"
    )
    result = project.pytester.run(sys.executable, "-c", code)
    assert result.stdout.lines == ["[]"]


# --------------------------------------------------------------------------- xdist

XDIST_RECORD = """
import os
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_record(n, worker_id):
    with open(f"visible-{{worker_id}}-{{n}}.txt", "w") as out:
        out.write(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
"""


def visible_by_worker(path: Path) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for file in path.glob("visible-*.txt"):
        seen.setdefault(file.name.split("-")[1], set()).add(file.read_text())
    return seen


@simulated_hardware
def test_xdist_gives_each_worker_one_gpu_from_the_outer_list(project, monkeypatch):
    project.torch()
    project.nvidia_smi(gpus=2)  # GPU 1's UUID ends in 1: a prefix of it names it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bcfee904-df4b-4b87-881e-903b769eea31,0")
    project.pytester.makepyfile(XDIST_RECORD.format(n=8))
    result = project.run_subprocess("-n", "2", "--envsetup-pin-gpus")
    result.assert_outcomes(passed=8)
    assert visible_by_worker(project.pytester.path) == {
        "gw0": {"GPU-bcfee904-df4b-4b87-881e-903b769eea31"},
        "gw1": {"0"},
    }


@simulated_hardware
def test_xdist_pins_only_the_gpus_cuda_itself_would_show(project, monkeypatch):
    """3 GPUs, CUDA_VISIBLE_DEVICES=0,7,1: CUDA stops at 7, so only GPU 0 exists for torch;
    no worker may get 7 (or 1), and `device all` runs over cpu and cuda:0 only."""
    project.torch()
    project.nvidia_smi(gpus=3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7,1")
    project.pytester.makepyfile(XDIST_RECORD.format(n=4))
    result = project.run_subprocess("-n", "2", "--envsetup-pin-gpus")
    result.assert_outcomes(passed=4)
    assert visible_by_worker(project.pytester.path) == {"gw0": {"0"}, "gw1": {"0"}}
    project.pytester.makepyfile(DEVICE_TEST)
    listed = project.run("--envsetup-device", "all", "--collect-only", "-q")
    ids = [line for line in listed.outlines if "::test_device[" in line]
    assert [line.rpartition("[")[2] for line in ids] == ["cpu]", "cuda:0]"]


@simulated_hardware
def test_xdist_more_workers_than_gpus_share_round_robin_said_in_the_header(project, monkeypatch):
    project.torch()
    project.nvidia_smi(gpus=4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    project.pytester.makeini("[pytest]\nenvsetup_pin_gpus = true\nfilterwarnings = error\n")
    project.pytester.makepyfile(XDIST_RECORD.format(n=12))
    result = project.run_subprocess("-n", "3", "-W", "error")
    result.assert_outcomes(passed=12)  # no PytestWarning that -W error would make fatal
    assert visible_by_worker(project.pytester.path) == {"gw0": {"3"}, "gw1": {"1"}, "gw2": {"3"}}
    result.stdout.fnmatch_lines(
        ["envsetup: *; xdist workers pinned to CUDA_VISIBLE_DEVICES=3,1 (shared round-robin)"]
    )


def two_gpu_suite(project: Project, gpus: str, tests: str) -> None:
    """Two detected GPUs, a CUDA torch that sees `gpus`, XDIST_RECORD (6 tests) plus `tests`."""
    project.cuda_torch(gpus=gpus)
    project.nvidia_smi(gpus=2)
    project.pytester.makepyfile(XDIST_RECORD.format(n=6) + tests)


@simulated_hardware
def test_xdist_pins_detected_gpus_and_device_is_the_workers_gpu(project):
    two_gpu_suite(
        project,
        f"{H100};NVIDIA H100 NVL:95830:9.0",
        """
@pytest.mark.gpu
@pytest.mark.parametrize("n", range(6))
def test_gpu(n, device):
    import torch
    assert str(device) == "cuda:0" and torch.cuda.device_count() == 1
    name = torch.cuda.get_device_name(0)
    expected = {"0": "NVIDIA H100 80GB HBM3", "1": "NVIDIA H100 NVL"}
    assert name == expected[os.environ["CUDA_VISIBLE_DEVICES"]]
""",
    )
    result = project.run_subprocess("-n", "2", "--envsetup-pin-gpus")
    result.assert_outcomes(passed=12)
    assert visible_by_worker(project.pytester.path) == {"gw0": {"0"}, "gw1": {"1"}}


@simulated_hardware
def test_xdist_device_all_collects_identically_and_does_not_pin(project):
    two_gpu_suite(
        project,
        f"{H100};{H100}",
        """
def test_device(device):
    import torch
    assert torch.cuda.device_count() == 2
""",
    )
    result = project.run_subprocess("-n", "2", "--envsetup-device", "all")
    result.assert_outcomes(passed=9)
    assert set().union(*visible_by_worker(project.pytester.path).values()) == {"<unset>"}


# --------------------------------------------------------------------------- a good guest


@pytest.mark.parametrize("where", ["conftest.py", "sub/conftest.py"])
def test_an_option_name_taken_by_a_conftest_is_a_message_naming_envsetup(project, where):
    project.pytester.makepyfile(
        **{
            where.removesuffix(".py"): "def pytest_addoption(parser):\n"
            "    parser.addoption('--envsetup-device')\n",
            "sub/test_x": "def test_x():\n    pass\n",
        }
    )
    result = project.run_subprocess()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "ArgumentError" not in output
    if where != "conftest.py" and int(pytest.__version__.split(".")[0]) < 9:
        # pytest 8 has built its parser before a subfolder's conftest adds options: the
        # project's option is ignored with or without envsetup, and the run goes on.
        result.assert_outcomes(passed=1)
        return
    assert "the option --envsetup-device is defined twice" in output
    assert "-p no:envsetup" in output


@simulated_hardware
def test_gpu_tests_and_device_leave_os_environ_as_they_found_it(project, monkeypatch):
    monkeypatch.delenv("PYTORCH_NVML_BASED_CUDA_CHECK")
    project.cuda_torch()
    project.pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.gpu
        def test_a(device):
            pass

        def test_b(device):
            assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
        """
    )
    project.run("-p", "no:randomly").assert_outcomes(passed=2)
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ


@simulated_hardware
def test_device_fixture_without_torch_fails_naming_the_fix(project):
    project.pytester.makepyfile("def test_x(device):\n    pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*envsetup's `device` fixture gives a torch.device, but torch is not installed in *fix: *"]
    )
    assert "ModuleNotFoundError" not in result.stdout.str()


@simulated_hardware
def test_gpu_test_without_torch_is_judged_by_the_hardware(project):
    """No torch: envsetup judges the GPU (a cuDF test needs one, not torch)."""
    project.pytester.makepyfile("import pytest\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n")
    assert reasons(project.run()) == [
        "no GPU detected (torch is not installed; judged from detection)"
    ]
    project.run("--envsetup-gpu", "require").assert_outcomes(errors=1)


def test_marker_with_foreign_arguments_steps_back_and_says_so_in_verbose_mode(project):
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu(type="A10", count=1)
        def test_a():
            pass

        @pytest.mark.gpu
        def test_b():
            pass
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert "left to the project" not in result.stdout.str()
    result = project.run("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=2)
    assert result.stdout.str().count("`gpu` marker left to the project") == 1


def test_a_hung_nvidia_smi_adds_nothing_to_pytest_start(project):
    script = project.bin / "nvidia-smi"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    project.pytester.makepyfile("def test_x():\n    pass\n")
    result = project.run_subprocess("--timeout", "20")
    result.assert_outcomes(passed=1)
    assert result.duration < 10  # detection would wait out its 5 s timeout, twice


def test_quiet_runs_print_no_header_and_detect_nothing(project):
    project.pytester.makeconftest(SYS_MODULES_PROBE.replace('"torch"', '"envsetup.detect"'))
    project.pytester.makepyfile("def test_x():\n    pass\n")
    result = project.run_subprocess("-q")
    assert "envsetup:" not in result.stdout.str()
    assert (project.pytester.path / "torch-in-sys-modules.txt").read_text() == "False"
