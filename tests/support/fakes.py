"""Fake machines for tests: sysfs/procfs trees under a root, fake tools on PATH, fake NVML.

Everything here builds real files and real executables, so the code under test reads, runs and
dlopens them exactly as it would on a GPU machine. Reusable by any test that needs a machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

DATA = Path(__file__).parents[1] / "data"
SMI_SAMPLES = DATA / "nvidia-smi"

PROC_VERSION_580 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  "
    "(nixbld@)  \nGCC version:  gcc version 15.3.0 (GCC) \n"
)


def write(root: Path, relative: str, text: str) -> Path:
    """Write `text` at `root/relative`, creating folders."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def nvidia_driver(root: Path, version: str = "580.159.04", *, nodes: int | None = 1) -> None:
    """A loaded NVIDIA kernel module: sysfs and procfs version files and (unless `nodes` is
    None, a container without GPU access) /dev/nvidiactl plus /dev/nvidia0..N-1."""
    write(root, "sys/module/nvidia/version", version + "\n")
    write(
        root,
        "proc/driver/nvidia/version",
        PROC_VERSION_580.replace("580.159.04", version),
    )
    if nodes is not None:
        write(root, "dev/nvidiactl", "")
        for index in range(nodes):
            write(root, f"dev/nvidia{index}", "")


def wsl(root: Path) -> None:
    write(root, "proc/sys/kernel/osrelease", "5.15.167.4-microsoft-standard-WSL2\n")
    write(root, "dev/dxg", "")


def kfd_node(
    root: Path,
    node: int,
    gfx_target_version: int,
    *,
    location_id: int = 0,
    memory_bytes: int | None = None,
) -> None:
    """One KFD topology node (gfx_target_version 0 = a CPU node)."""
    base = f"sys/class/kfd/kfd/topology/nodes/{node}"
    write(
        root,
        f"{base}/properties",
        f"cpu_cores_count {0 if gfx_target_version else 16}\n"
        f"simd_count {0 if not gfx_target_version else 440}\n"
        f"gfx_target_version {gfx_target_version}\n"
        f"location_id {location_id}\ndomain 0\n",
    )
    if memory_bytes is not None:
        write(
            root, f"{base}/mem_banks/0/properties", f"heap_type 1\nsize_in_bytes {memory_bytes}\n"
        )


def pci_device(root: Path, slot: str, vendor: int, device: int, pci_class: int = 0x030000) -> None:
    base = f"sys/bus/pci/devices/{slot}"
    write(root, f"{base}/vendor", f"0x{vendor:04x}\n")
    write(root, f"{base}/device", f"0x{device:04x}\n")
    write(root, f"{base}/class", f"0x{pci_class:06x}\n")


def fake_tool(
    directory: Path,
    name: str,
    *,
    outputs: Mapping[str, str] | None = None,
    stdout: str = "",
    stderr: str = "",
    exit_code: int = 0,
    hang: bool = False,
    crash: bool = False,
    executable: bool = True,
    log: Path | None = None,
    then: str = "",
) -> Path:
    """A POSIX shell script standing in for `name` (nvidia-smi, rocm_agent_enumerator).

    `outputs` maps a prefix of the first argument ("--query-gpu", "" for no argument) to what is
    printed; otherwise `stdout`. `hang` sleeps forever (to test timeouts), `crash` dies of
    SIGSEGV, `log` records every invocation's arguments, one line each. `then` is a shell
    command run after printing and before exiting (`kill -SEGV $$`, `exec sleep 600`): a tool
    that prints part of its output and then dies or wedges.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh"]
    if log is not None:
        lines.append(f'echo "$*" >> {shlex.quote(str(log))}')
    if hang:
        lines.append("exec sleep 600")
    if crash:
        lines.append("kill -SEGV $$")
    for position, (prefix, text) in enumerate(sorted((outputs or {}).items(), reverse=True)):
        sample = directory / f".{name}.out{position}"
        sample.write_text(text)
        test = (
            '[ -z "$1" ]'
            if not prefix
            else f'case "$1" in {shlex.quote(prefix)}*) true;; *) false;; esac'
        )
        after = f"{then}; " if then else ""
        lines.append(f"if {test}; then cat {shlex.quote(str(sample))}; {after}exit {exit_code}; fi")
    if stdout:
        (directory / f".{name}.stdout").write_text(stdout)
        lines.append(f"cat {shlex.quote(str(directory / f'.{name}.stdout'))}")
    if stderr:
        (directory / f".{name}.stderr").write_text(stderr)
        lines.append(f"cat {shlex.quote(str(directory / f'.{name}.stderr'))} >&2")
    if then:
        lines.append(then)
    lines.append(f"exit {exit_code}")
    script = directory / name
    script.write_text("\n".join(lines) + "\n")
    mode = script.stat().st_mode
    script.chmod(
        mode | stat.S_IXUSR if executable else mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    )
    if not executable and os.access(script, os.X_OK):
        import pytest

        pytest.skip("this user and filesystem treat every file as executable")
    return script


def smi_outputs() -> dict[str, str]:
    """What the H100 sample machine's nvidia-smi prints for the query and the plain call."""
    return {
        "--query-gpu": (SMI_SAMPLES / "h100-580-query-gpu.csv").read_text(),
        "": (SMI_SAMPLES / "h100-580-table.txt").read_text(),
    }


#: The system commands the fake tools' scripts (and the tests' `then=`) run.
SHELL_COMMANDS = ("cat", "sleep", "yes")


def environ_with_path(directory: Path, **extra: str) -> dict[str, str]:
    """A minimal environment whose PATH holds `directory`, then links to `SHELL_COMMANDS` only.

    Not the system folders themselves: on a machine with a GPU, /usr/bin holds the real
    nvidia-smi (or rocm_agent_enumerator), which would answer for the fake machine wherever a
    test leaves its own tool out."""
    commands = directory.parent / ".shell-commands"
    commands.mkdir(parents=True, exist_ok=True)
    for name in SHELL_COMMANDS:
        found = shutil.which(name)
        if found is not None and not (commands / name).exists():
            (commands / name).symlink_to(found)
    env = {"PATH": os.pathsep.join([str(directory), str(commands)])}
    env.update(extra)
    return env


_CLI_ON_A_FAKE_ROOT = """
import functools, sys
from pathlib import Path
import envsetup.detect
envsetup.detect.detect = functools.partial(envsetup.detect.detect, root=Path(sys.argv[1]))
from envsetup.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_cli_on_root(
    root: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The whole CLI (`envsetup ARGS`) as a process whose live detection reads the fake machine
    under `root` (on a GPU machine the real driver would answer otherwise) with PATH holding
    `root/bin` only, as `environ_with_path` builds it; nothing else is changed."""
    env = {
        **os.environ,
        **environ_with_path(root / "bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return subprocess.run(
        [sys.executable, "-c", _CLI_ON_A_FAKE_ROOT, str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- a fake NVML / libcuda, compiled from C, so the ctypes code runs for real ----------------

FAKE_NVML_SOURCE = Path(__file__).parent / "fake_nvml.c"


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


#: The ways `build_fake_nvml(init_fault=...)` breaks nvmlInit_v2, in fake_nvml.c's numbering.
INIT_FAULTS = (None, "segfault", "abort", "hang")


def build_fake_nvml(
    target: Path,
    *,
    driver: str = "580.159.04",
    cuda: int = 13000,
    gpus: tuple[tuple[str, str], ...] = (("NVIDIA H100 80GB HBM3", "9.0"),),
    memory_bytes: int = 85520809984,
    init_rc: int = 0,
    mig: bool = False,
    init_fault: str | None = None,
    reported_count: int | None = None,
) -> Path:
    """Compile a stand-in libnvidia-ml.so.1 (also answering cuDriverGetVersion) at `target`.
    `init_fault` ("segfault", "abort", "hang") breaks nvmlInit_v2 as a broken driver does;
    `reported_count` is what nvmlDeviceGetCount_v2 claims. Callers skip when `compiler()` is
    None."""
    cc = compiler()
    assert cc is not None, "no C compiler: guard with fakes.compiler()"
    target.parent.mkdir(parents=True, exist_ok=True)
    defines = {
        "GPU_NAMES": ",".join(f'"{name}"' for name, _ in gpus) or '""',
        "CC_MAJORS": ",".join(cap.split(".")[0] for _, cap in gpus) or "0",
        "CC_MINORS": ",".join(cap.split(".")[1] for _, cap in gpus) or "0",
        "INIT_RC": str(init_rc),
        "INIT_FAULT": str(INIT_FAULTS.index(init_fault)),
        "REPORTED_COUNT": f"{len(gpus) if reported_count is None else reported_count}u",
        "MIG": str(int(mig)),
        "DRIVER": f'"{driver}"',
        "CUDA": str(cuda),
        "COUNT": f"{len(gpus)}u",
        "MEMORY": f"{memory_bytes}ULL",
    }
    flags = [f"-D{key}={value}" for key, value in defines.items()]
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(target), str(FAKE_NVML_SOURCE), *flags],
        check=True,
        capture_output=True,
    )
    return target
