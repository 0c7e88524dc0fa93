"""Fault injection on a live detect: broken tools on PATH, broken libraries, unreadable files.

tests/unit/detect/test_detect.py and tests/unit/detect/test_probe.py already cover an nvidia-smi
that hangs from the
start, crashes at once, is not executable or cannot start, a missing NVML and NVML init
failures. Here: the faults that come after some output (half a table, then a crash or a hang),
binary junk, libraries that exist but cannot be loaded, kernel files that cannot be read, and a
hung rocm_agent_enumerator. Every case: detect returns, in time, says what went wrong, and the
facts the other probes established survive.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import fakes

from envsetup.detect import detect

TABLE = (fakes.SMI_SAMPLES / "h100-580-table.txt").read_text()
HEADER_ONLY = "\n".join(TABLE.splitlines()[:8]) + "\n"  # banner and column titles, no GPU row


def _detect(root: Path, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return detect(root=root, environ=fakes.environ_with_path(root / "bin"), timeout=timeout)


def test_half_a_table_then_exit_0_is_cut_off_and_the_driver_survives(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", stdout=HEADER_ONLY)
    machine = _detect(tmp_path)
    assert machine.driver_version == "580.159.04"
    assert machine.gpus == ()
    (problem,) = machine.errors
    assert problem.kind == "unparseable"
    assert "nvidia-smi" in problem.message


def test_half_a_table_then_a_crash_names_the_signal(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", stdout=HEADER_ONLY, then="kill -SEGV $$")
    machine = _detect(tmp_path)
    assert machine.driver_version == "580.159.04"
    assert machine.cuda_version == "13.0"
    messages = " ".join(problem.message for problem in machine.errors)
    assert "signal 11" in messages or "cut off" in messages, machine.errors


def test_half_a_table_then_a_hang_is_a_timeout_within_the_limit(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", stdout=HEADER_ONLY, then="exec sleep 600")
    started = time.monotonic()
    machine = _detect(tmp_path, timeout=0.5)
    assert time.monotonic() - started < 0.5 + 3.0
    assert [problem.kind for problem in machine.errors] == ["timeout"]
    assert "did not answer within 0.5 s" in machine.errors[0].message
    assert machine.driver_version == "580.159.04"


def test_binary_junk_from_nvidia_smi_is_a_classified_failure(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(7).randbytes(256 * 1024))
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", then=f"cat {junk}")
    machine = _detect(tmp_path)
    assert machine.driver_version == "580.159.04"
    assert machine.gpus == ()
    assert [problem.kind for problem in machine.errors] == ["unparseable"]
    message = machine.errors[0].message
    assert message.isprintable() and "\ufffd" not in message  # never junk or escapes to a tty


def test_binary_junk_through_the_cli_is_exit_0_with_valid_json(tmp_path: Path) -> None:
    """Live probing is not user input: a broken tool is a finding (exit 0), not a usage error."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", then=f"cat {junk}", exit_code=3)
    env = {**os.environ, "PATH": os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"])}
    result = subprocess.run(
        [sys.executable, "-m", "envsetup", "detect", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    if not Path("/sys/module/nvidia/version").exists():  # this machine has no real driver
        assert [error["kind"] for error in document["errors"]] == ["unparseable"]
        assert "exit" in document["errors"][0]["message"]


def test_nvidia_smi_flooding_its_output_is_stopped_without_filling_memory(tmp_path: Path) -> None:
    """Before the bound, an endless output was buffered until the timeout: ~600 MB a second."""
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", then="exec yes '| NVIDIA-SMI 580.159.04 |'")
    started = time.monotonic()
    machine = _detect(tmp_path, timeout=30)
    assert time.monotonic() - started < 10  # stopped at the bound, long before the timeout
    (problem,) = machine.errors
    assert problem.kind == "unparseable" and "printed more than 8 MiB" in problem.message
    assert machine.driver_version == "580.159.04"


@pytest.mark.parametrize("library", ["libnvidia-ml.so.1", "libcuda.so.1"])
@pytest.mark.parametrize(
    "content", [b"", b"\x7fELF junk that is not a library"], ids=["empty", "junk"]
)
def test_a_library_that_cannot_be_loaded_falls_back_to_nvidia_smi(
    tmp_path: Path, library: str, content: bytes
) -> None:
    fakes.nvidia_driver(tmp_path)
    (tmp_path / "usr/lib64").mkdir(parents=True)
    (tmp_path / "usr/lib64" / library).write_bytes(content)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs())
    machine = _detect(tmp_path)
    assert machine.errors == ()
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert machine.cuda_version == "13.0"


@pytest.mark.skipif(fakes.compiler() is None, reason="needs a C compiler")
def test_nvml_without_a_libcuda_derives_cuda_from_the_driver(tmp_path: Path) -> None:
    """NVML answers everything but the CUDA version (cuda=0), and libcuda is missing."""
    fakes.nvidia_driver(tmp_path)
    fakes.build_fake_nvml(tmp_path / "usr/lib64/libnvidia-ml.so.1", cuda=0)
    machine = _detect(tmp_path)
    assert machine.gpus and machine.gpus[0].compute_capability == "9.0"
    assert machine.cuda_version == "13.0"  # from the driver through matrices/
    assert any("libcuda" in item.source for item in machine.evidence)


def _unreadable(path: Path, how: str) -> None:
    """A kernel file that exists but cannot be read, in ways that hold even for root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if how == "directory":
        path.mkdir()
    elif how == "dangling-link":
        path.symlink_to(path.parent / "gone")
    else:
        path.symlink_to(path)  # a loop: ELOOP


@pytest.mark.parametrize("how", ["directory", "dangling-link", "loop"])
def test_unreadable_kernel_files_are_no_facts_not_crashes(tmp_path: Path, how: str) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.kfd_node(tmp_path, 1, 90010, memory_bytes=64 << 30)
    fakes.pci_device(tmp_path, "0000:03:00.0", 0x8086, 0x56A0)
    for relative in (
        "sys/module/nvidia/version",
        "proc/driver/nvidia/version",
        "sys/class/kfd/kfd/topology/nodes/1/properties",
        "sys/class/kfd/kfd/topology/nodes/1/mem_banks/0/properties",
        "sys/bus/pci/devices/0000:03:00.0/vendor",
        "proc/sys/kernel/osrelease",
    ):
        _unreadable(tmp_path / relative, how)
    machine = _detect(tmp_path)
    assert machine.driver_version is None
    assert machine.gpus == ()
    assert not machine.xpu
    assert machine.errors == ()


def test_unreadable_topology_folder_is_no_amd_gpu(tmp_path: Path) -> None:
    nodes = tmp_path / "sys/class/kfd/kfd/topology/nodes"
    nodes.parent.mkdir(parents=True)
    nodes.symlink_to(nodes)
    machine = _detect(tmp_path)
    assert machine.gpus == ()
    assert machine.to_json()["rocm"] == []


def test_hung_rocm_agent_enumerator_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    fakes.fake_tool(tmp_path / "bin", "rocm_agent_enumerator", hang=True)
    started = time.monotonic()
    machine = _detect(tmp_path, timeout=0.5)
    assert time.monotonic() - started < 0.5 + 3.0
    assert machine.gpus == ()
    assert any("did not answer within 0.5 s" in warning for warning in machine.warnings)


# --- a driver library that crashes, aborts, hangs or lies: NVML runs in a child process ----------

needs_cc = pytest.mark.skipif(
    fakes.compiler() is None or not sys.platform.startswith("linux"), reason="needs a C compiler"
)


def _broken_nvml(root: Path, **fault: object) -> None:
    """A loaded driver, a broken libnvidia-ml under `root`, and a working nvidia-smi."""
    fakes.nvidia_driver(root)
    fakes.build_fake_nvml(root / "usr/lib64/libnvidia-ml.so.1", **fault)  # type: ignore[arg-type]
    fakes.fake_tool(root / "bin", "nvidia-smi", outputs=fakes.smi_outputs())


@needs_cc
@pytest.mark.parametrize(("fault", "signal"), [("segfault", "SIGSEGV"), ("abort", "SIGABRT")])
def test_nvml_crashing_in_init_is_an_error_and_nvidia_smi_answers(
    tmp_path: Path, fault: str, signal: str
) -> None:
    """Before: in-process ctypes, so detect (and `envsetup detect`) died with exit 139/134."""
    _broken_nvml(tmp_path, init_fault=fault)
    machine = _detect(tmp_path)
    (problem,) = machine.errors
    assert problem.kind == "nvml_crashed"
    assert signal in problem.message and "libnvidia-ml.so.1" in problem.message
    assert machine.driver_version == "580.159.04"  # the kernel module's file
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA H100 80GB HBM3"]  # nvidia-smi
    assert machine.gpus[0].compute_capability == "9.0"
    assert machine.cuda_version == "13.0"


@needs_cc
def test_nvml_hanging_in_init_is_a_timeout_and_nvidia_smi_answers(tmp_path: Path) -> None:
    """Before: an init that never returns hung detect forever, whatever the timeout."""
    _broken_nvml(tmp_path, init_fault="hang")
    started = time.monotonic()
    machine = _detect(tmp_path, timeout=1.0)
    assert time.monotonic() - started < 1.0 + 5.0
    (problem,) = machine.errors
    assert problem.kind == "timeout" and problem.message.startswith("NVML did not answer")
    assert "dmesg" in (problem.hint or "")
    assert machine.driver_version == "580.159.04"
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA H100 80GB HBM3"]


@needs_cc
def test_a_bogus_device_count_is_capped_not_looped_over(tmp_path: Path) -> None:
    """Before: 0xFFFFFFFF devices meant four billion handle queries (hours)."""
    _broken_nvml(tmp_path, reported_count=0xFFFFFFFF)
    started = time.monotonic()
    machine = _detect(tmp_path)
    assert time.monotonic() - started < 5.0
    assert machine.errors == ()
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA H100 80GB HBM3"]  # the one answering
    assert any("4294967295 GPUs" in warning for warning in machine.warnings)


@needs_cc
@pytest.mark.parametrize("fault", ["segfault", "hang"])
def test_envsetup_detect_survives_a_broken_nvml(tmp_path: Path, fault: str) -> None:
    """The whole CLI, `detect --json --timeout 2`, with only the root moved to a fake machine
    (a real driver's module and NVML would answer otherwise). Before: exit 139, or no end."""
    _broken_nvml(tmp_path, init_fault=fault)
    result = fakes.run_cli_on_root(tmp_path, "detect", "--json", "--timeout", "2", timeout=30)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    kind = "nvml_crashed" if fault == "segfault" else "timeout"
    assert [error["kind"] for error in document["errors"]] == [kind]
    assert document["driver_version"] == "580.159.04"
    assert [gpu["name"] for gpu in document["gpus"]] == ["NVIDIA H100 80GB HBM3"]
