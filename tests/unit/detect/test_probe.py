"""Probes against fake sysfs/procfs trees, fake tools on PATH and a compiled fake NVML."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import fakes

from envsetup.detect import amd, host, intel, nvidia, nvml, overrides, tool
from envsetup.detect.findings import Findings
from envsetup.errors import UsageError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake tools are POSIX scripts")


def _facts(findings: Findings) -> list[tuple[str, str | None, str]]:
    return [(item.fact, item.value, item.source) for item in findings.evidence]


# --- overrides ---------------------------------------------------------------------------------


def test_our_variables_beat_the_fallbacks_and_the_loser_is_named() -> None:
    findings = Findings()
    found = overrides.read_overrides(
        {
            "ENVSETUP_CUDA_DRIVER_VERSION": "550.144.03",
            "UV_CUDA_DRIVER_VERSION": "535.104.05",
            "CONDA_OVERRIDE_CUDA": "12",
            "LTT_PYTORCH_COMPUTATION_BACKEND": "cu12.1,cu118",
            "ENVSETUP_COMPUTE_CAP": "sm_86 9.0",
        },
        findings,
    )
    assert found["driver_version"].value == "550.144.03"
    assert found["driver_version"].variable == "ENVSETUP_CUDA_DRIVER_VERSION"
    assert found["cuda_version"].value == "12.0"
    assert found["backend_override"].value == "cu121"
    assert found["compute_capability"].value == ("8.6", "9.0")
    assert ("driver_version", "550.144.03", "env ENVSETUP_CUDA_DRIVER_VERSION") in _facts(findings)
    assert any("UV_CUDA_DRIVER_VERSION" in warning for warning in findings.warnings)


def test_uv_auto_and_empty_values_mean_detect() -> None:
    findings = Findings()
    assert (
        overrides.read_overrides({"UV_TORCH_BACKEND": "auto", "ENVSETUP_BACKEND": ""}, findings)
        == {}
    )
    assert findings.evidence == []


def test_a_malformed_envsetup_variable_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as error:
        overrides.read_overrides({"ENVSETUP_CUDA_VERSION": "twelve"}, Findings())
    assert error.value.exit_code == 2
    assert "ENVSETUP_CUDA_VERSION='twelve'" in str(error.value)
    assert "such as 12.4" in str(error.value)


def test_a_malformed_fallback_is_skipped_with_a_warning() -> None:
    findings = Findings()
    found = overrides.read_overrides({"UV_TORCH_BACKEND": "cuda-latest"}, findings)
    assert found == {}
    assert findings.warnings and "UV_TORCH_BACKEND" in findings.warnings[0]


# --- platform ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "os_name", "expected"),
    [
        ("x86_64", "linux", "x86_64"),
        ("AMD64", "windows", "amd64"),
        ("arm64", "linux", "aarch64"),
        ("aarch64", "macos", "arm64"),
        ("ARM64", "windows", "arm64"),
        ("x86_64", "macos", "x86_64"),
    ],
)
def test_architecture_names_follow_each_os(machine: str, os_name: str, expected: str) -> None:
    assert host.normalise_arch(machine, os_name) == expected


def test_os_names() -> None:
    assert [host.os_name(p) for p in ("linux", "win32", "darwin")] == ["linux", "windows", "macos"]


def test_platform_of_this_interpreter(tmp_path: Path) -> None:
    found = host.current_platform(tmp_path)
    assert found.python.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert found.wsl is False
    if sys.platform.startswith("linux"):
        assert found.key in ("linux-x86_64", "linux-aarch64")


def test_python_tag_agrees_with_the_build_configuration() -> None:
    import sysconfig

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert host.python_tag().endswith("t") is free_threaded


def test_wsl_is_read_from_the_kernel_release(tmp_path: Path) -> None:
    fakes.wsl(tmp_path)
    assert host.is_wsl(tmp_path)
    assert not host.is_wsl(tmp_path / "elsewhere")


# --- NVIDIA files ------------------------------------------------------------------------------


def test_driver_version_from_sysfs_and_procfs(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path, "580.159.04")
    findings = Findings()
    assert nvidia.sys_module_driver(tmp_path, findings) == "580.159.04"
    assert nvidia.proc_driver(tmp_path, findings) == "580.159.04"
    sources = [item.source for item in findings.evidence]
    assert sources == ["/sys/module/nvidia/version", "/proc/driver/nvidia/version"]
    assert all(item.ms < 100 for item in findings.evidence)


#: Driver versions that are not ASCII digits and dots: Arabic-Indic and full-width digits,
#: a NUL inside or after, a superscript. Before, \d let some sources take them (and a prefix of
#: others), so 550.54.14 in Arabic-Indic digits was "older than every CUDA release" and yet
#: cu126 was planned.
NOT_DRIVER_VERSIONS = (
    "\u0665\u0665\u0660.\u0665\u0664.\u0661\u0664",
    "\uff15\uff15\uff10.54.14",
    "550.54.14\x00",
    "550\x00.54.14",
    "550.54.1\u2074",
)


@pytest.mark.parametrize("text", NOT_DRIVER_VERSIONS)
def test_kernel_files_reject_a_driver_version_that_is_not_ascii(tmp_path: Path, text: str) -> None:
    fakes.nvidia_driver(tmp_path, text)
    findings = Findings()
    assert nvidia.sys_module_driver(tmp_path, findings) is None
    assert nvidia.proc_driver(tmp_path, findings) is None


@pytest.mark.parametrize("text", NOT_DRIVER_VERSIONS)
def test_overrides_and_nvml_reject_a_driver_version_that_is_not_ascii(text: str) -> None:
    with pytest.raises(UsageError, match="is not an NVIDIA driver version"):
        overrides.read_overrides({"ENVSETUP_CUDA_DRIVER_VERSION": text}, Findings())
    findings = Findings()
    assert overrides.read_overrides({"UV_CUDA_DRIVER_VERSION": text}, findings) == {}
    assert "ignored" in findings.warnings[0]
    device = nvml.RawDevice(name=b"GPU")
    report = nvml.NvmlReport("x", driver=text.encode(), cuda=12040, devices=(device,))
    assert nvml.interpret(report)[0] is None


def test_old_proc_layout_and_missing_files(tmp_path: Path) -> None:
    fakes.write(
        tmp_path,
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Fri Oct 22 11:05:27 UTC 2021\n",
    )
    findings = Findings()
    assert nvidia.proc_driver(tmp_path, findings) == "470.82.01"
    assert nvidia.sys_module_driver(tmp_path, findings) is None
    assert findings.evidence[-1].value is None


def test_device_nodes(tmp_path: Path) -> None:
    findings = Findings()
    assert nvidia.device_nodes(tmp_path, False, findings) is False
    fakes.nvidia_driver(tmp_path, nodes=2)
    assert nvidia.device_nodes(tmp_path, False, findings) is True
    fakes.wsl(tmp_path)
    assert nvidia.device_nodes(tmp_path, True, findings) is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0,1", ("0", "1")),
        ("GPU-bcfee904", ("GPU-bcfee904",)),
        ("", ()),
        ("-1", ("-1",)),  # as written; what CUDA makes of it is envsetup.model.visibility's job
        ("0, 7,,1", ("0", "7", "", "1")),
    ],
)
def test_visible_devices(value: str | None, expected: tuple[str, ...] | None) -> None:
    findings = Findings()
    environ = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert nvidia.visible_devices(environ, findings) == expected


def test_container_asked_for_no_gpu_is_a_warning() -> None:
    findings = Findings()
    nvidia.visible_devices({"NVIDIA_VISIBLE_DEVICES": "void"}, findings)
    assert "NVIDIA_VISIBLE_DEVICES" in findings.warnings[0]


# --- tools -------------------------------------------------------------------------------------


def test_find_tool_reports_a_file_that_is_not_executable(tmp_path: Path) -> None:
    fakes.fake_tool(tmp_path, "nvidia-smi", stdout="x", executable=False)
    found, broken = tool.find_tool("nvidia-smi", {"PATH": str(tmp_path)})
    assert found is None
    assert broken is not None and "not executable" in broken


def test_find_tool_uses_extra_locations(tmp_path: Path) -> None:
    script = fakes.fake_tool(tmp_path / "usr/lib/wsl/lib", "nvidia-smi", stdout="x")
    found, _ = tool.find_tool(
        "nvidia-smi",
        {"PATH": str(tmp_path / "empty")},
        nvidia.smi_candidates(tmp_path, "linux", True),
    )
    assert found == script


def test_a_hung_tool_is_killed_at_the_timeout(tmp_path: Path) -> None:
    script = fakes.fake_tool(tmp_path, "nvidia-smi", hang=True)
    started = time.monotonic()
    result = tool.run_tool([str(script)], timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.problem is not None and result.problem.kind == "timeout"
    assert "0.5 s" in result.problem.message
    assert elapsed < 0.5 + 3.0


def test_a_crashing_tool_reports_its_signal(tmp_path: Path) -> None:
    script = fakes.fake_tool(tmp_path, "nvidia-smi", crash=True)
    result = tool.run_tool([str(script)], timeout=5)
    assert result.problem is None
    assert result.returncode is not None and result.returncode < 0


def test_a_tool_that_cannot_start(tmp_path: Path) -> None:
    result = tool.run_tool([str(tmp_path / "missing")], timeout=5)
    assert result.problem is not None and result.problem.kind == "not_found"


# --- AMD and Intel -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "target"),
    [(90010, "gfx90a"), (90402, "gfx942"), (110000, "gfx1100"), (100300, "gfx1030"), (0, None)],
)
def test_gfx_targets(version: int, target: str | None) -> None:
    assert amd.gfx_target(version) == target


def test_kfd_topology_skips_cpu_nodes(tmp_path: Path) -> None:
    fakes.kfd_node(tmp_path, 0, 0)
    fakes.kfd_node(tmp_path, 1, 90010, location_id=0x0300, memory_bytes=64 * 1024**3)
    fakes.kfd_node(tmp_path, 2, 110000)
    fakes.write(tmp_path, "dev/kfd", "")
    findings = Findings()
    gpus = amd.kfd_gpus(tmp_path, 1, findings)
    assert gpus is not None
    assert [(g.index, g.arch, g.vendor) for g in gpus] == [
        (1, "gfx90a", "amd"),
        (2, "gfx1100", "amd"),
    ]
    assert gpus[0].memory_mib == 65536
    assert gpus[0].bus_id == "0000:03:00.0"
    assert findings.warnings == []


def test_kfd_without_dev_kfd_warns(tmp_path: Path) -> None:
    fakes.kfd_node(tmp_path, 1, 90402)
    findings = Findings()
    amd.kfd_gpus(tmp_path, 0, findings)
    assert "/dev/kfd" in findings.warnings[0]


def test_rocm_agent_enumerator_fallback(tmp_path: Path) -> None:
    fakes.fake_tool(tmp_path / "bin", "rocm_agent_enumerator", stdout="gfx000\ngfx90a\ngfx90a\n")
    findings = Findings()
    assert amd.kfd_gpus(tmp_path, 0, findings) is None
    gpus = amd.enumerator_gpus(tmp_path, fakes.environ_with_path(tmp_path / "bin"), 0, 5, findings)
    assert gpus is not None and [gpu.arch for gpu in gpus] == ["gfx90a", "gfx90a"]


def test_intel_counts_only_known_discrete_gpus(tmp_path: Path) -> None:
    fakes.pci_device(tmp_path, "0000:00:02.0", 0x8086, 0x46A6)  # Alder Lake iGPU
    assert intel.intel_xpu(tmp_path, Findings()) is False
    fakes.pci_device(tmp_path, "0000:03:00.0", 0x8086, 0x56A0)  # Arc A770
    fakes.pci_device(tmp_path, "0000:04:00.0", 0x8086, 0x56A1, pci_class=0x020000)
    findings = Findings()
    assert intel.intel_xpu(tmp_path, findings) is True
    assert findings.evidence[-1].value == "0000:03:00.0 [8086:56a0]"


# --- NVML and libcuda --------------------------------------------------------------------------


def test_a_missing_library_is_none_for_real(tmp_path: Path) -> None:
    candidates = nvml.library_candidates("nvidia-ml", tmp_path, "linux", True)
    assert all(str(tmp_path) in candidate for candidate in candidates)
    assert nvml.query_nvml(candidates, timeout=30) is None
    cuda = nvml.library_candidates("cuda", tmp_path, "linux", False)
    assert nvml.query_libcuda(cuda, timeout=30) is None
    assert not nvml.could_load(candidates)  # so detect spares itself the child process


def test_library_candidates_per_os() -> None:
    assert nvml.library_candidates("nvidia-ml", Path("/"), "linux", False)[0] == "libnvidia-ml.so.1"
    assert nvml.library_candidates("nvidia-ml", Path("/"), "windows", False)[0] == "nvml.dll"
    assert nvml.library_candidates("nvidia-ml", Path("/"), "macos", False) == ()


def test_interpret_raw_nvml_answers() -> None:
    report = nvml.NvmlReport(
        library="libnvidia-ml.so.1",
        driver=b"580.159.04",
        cuda=13000,
        devices=(
            nvml.RawDevice(
                name=b"NVIDIA H100 80GB HBM3",
                memory_total=85520809984,
                capability=(9, 0),
                uuid=b"GPU-bcfee904-df4b-4b87-881e-903b769eea31",
                bus_id=b"00000000:00:06.0",
                mig_mode=1,
                mig=(
                    nvml.RawMig(name=b"NVIDIA H100 80GB HBM3 MIG 1g.10gb", memory_total=10 * 2**30),
                ),
            ),
            nvml.RawDevice(),
        ),
    )
    driver, cuda, gpus, problem = nvml.interpret(report)
    assert (driver, cuda, problem) == ("580.159.04", "13.0", None)
    assert gpus[0].memory_mib == 81559
    assert gpus[0].compute_capability == "9.0"
    assert gpus[0].mig_enabled is True
    assert gpus[0].mig_devices[0].memory_mib == 10240
    assert gpus[1].name is None and gpus[1].mig_enabled is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [(9, "no_driver"), (18, "version_mismatch"), (4, "permission_denied"), (999, None)],
)
def test_nvml_init_failures_are_classified(code: int, kind: str | None) -> None:
    _, _, gpus, problem = nvml.interpret(nvml.NvmlReport("x", init_error=(code, "message")))
    assert gpus == ()
    assert (problem.kind if problem else None) == kind


def test_no_devices_is_a_problem() -> None:
    _, _, _, problem = nvml.interpret(nvml.NvmlReport("x", driver=b"580.1", cuda=13000))
    assert problem is not None and problem.kind == "no_devices"


@pytest.mark.parametrize(
    ("value", "text"), [(13000, "13.0"), (12040, "12.4"), (11080, "11.8"), (0, None)]
)
def test_cuda_version_encoding(value: int, text: str | None) -> None:
    assert nvml.cuda_from_int(value) == text


needs_cc = pytest.mark.skipif(
    fakes.compiler() is None or not sys.platform.startswith("linux"), reason="needs a C compiler"
)


@needs_cc
def test_real_ctypes_calls_against_a_compiled_fake_nvml(tmp_path: Path) -> None:
    library = fakes.build_fake_nvml(
        tmp_path / "usr/lib64/libnvidia-ml.so.1",
        gpus=(("NVIDIA H100 80GB HBM3", "9.0"), ("Tesla T4", "7.5")),
    )
    report = nvml.query_nvml(
        nvml.library_candidates("nvidia-ml", tmp_path, "linux", False), timeout=30
    )
    assert isinstance(report, nvml.NvmlReport) and report.library == str(library)
    driver, cuda, gpus, problem = nvml.interpret(report)
    assert (driver, cuda, problem) == ("580.159.04", "13.0", None)
    assert [(g.name, g.compute_capability, g.memory_mib) for g in gpus] == [
        ("NVIDIA H100 80GB HBM3", "9.0", 81559),
        ("Tesla T4", "7.5", 81559),
    ]
    assert gpus[1].bus_id == "00000000:07:00.0"
    assert gpus[0].uuid == "GPU-00000000-0000-0000-0000-000000000000"
    assert gpus[0].mig_enabled is None  # "not supported" on this GPU
    assert nvml.query_libcuda([str(library)], timeout=30) == (13000, str(library))


@needs_cc
def test_the_library_is_never_loaded_into_this_process(tmp_path: Path) -> None:
    """The ctypes calls run in a child: whatever the driver library does at load time or in
    its calls (crash, abort, hang) cannot touch the caller."""
    library = fakes.build_fake_nvml(tmp_path / "libnvidia-ml.so.1")
    assert isinstance(nvml.query_nvml([str(library)], timeout=30), nvml.NvmlReport)
    assert str(library) not in Path("/proc/self/maps").read_text()


@needs_cc
def test_nvml_init_failure_through_ctypes(tmp_path: Path) -> None:
    library = fakes.build_fake_nvml(tmp_path / "libnvidia-ml.so.1", init_rc=18)
    report = nvml.query_nvml([str(library)], timeout=30)
    assert isinstance(report, nvml.NvmlReport) and report.init_error == (
        18,
        "RM has detected an NVML/RM version mismatch.",
    )


@needs_cc
def test_mig_instances_through_ctypes(tmp_path: Path) -> None:
    library = fakes.build_fake_nvml(tmp_path / "libnvidia-ml.so.1", mig=True)
    report = nvml.query_nvml([str(library)], timeout=30)
    assert isinstance(report, nvml.NvmlReport)
    _, _, (gpu,), _ = nvml.interpret(report)
    assert gpu.mig_enabled is True
    assert [(m.name, m.uuid, m.memory_mib) for m in gpu.mig_devices] == [
        ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "MIG-00000000-0000-0000-0000-000000000000", 40960),
        ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "MIG-00000000-0000-0000-0000-000000000001", 40960),
    ]


# --- garbage in sysfs/procfs never breaks detection -------------------------------------------

_GARBAGE_FILES = (
    "sys/module/nvidia/version",
    "proc/driver/nvidia/version",
    "proc/sys/kernel/osrelease",
    "sys/class/kfd/kfd/topology/nodes/1/properties",
    "sys/class/kfd/kfd/topology/nodes/1/mem_banks/0/properties",
    "sys/class/kfd/kfd/topology/nodes/1/name",
    "sys/bus/pci/devices/0000:03:00.0/vendor",
    "sys/bus/pci/devices/0000:03:00.0/device",
    "sys/bus/pci/devices/0000:03:00.0/class",
)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(["gfx_target_version -5\n", "size_in_bytes -1\n", "0x8086\n"]),
            st.integers(-(2**70), 2**70).map(
                lambda n: f"gfx_target_version {n}\nlocation_id {n}\ndomain {n}\n"
            ),
        ),
        min_size=len(_GARBAGE_FILES),
        max_size=len(_GARBAGE_FILES),
    )
)
def test_detect_never_raises_on_garbage_files(texts: list[str]) -> None:
    from envsetup.detect import detect

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for relative, text in zip(_GARBAGE_FILES, texts):
            fakes.write(root, relative, text)
        machine = detect(root=root, environ={"PATH": ""})
    assert all(gpu.index >= 0 for gpu in machine.gpus)
