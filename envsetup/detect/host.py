"""Platform facts: OS, CPU architecture, C library, Python version, WSL.

Read from `sys`/`os` directly rather than the `platform` module: `platform.libc_ver()` reads the
interpreter binary and the module itself costs milliseconds we do not need to spend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from envsetup import settings
from envsetup.detect.findings import Findings, now
from envsetup.model.machine import Platform

_OS_NAMES = {"linux": "linux", "win32": "windows", "cygwin": "windows", "darwin": "macos"}

#: Spellings of the same CPU architecture, per OS, as the matrices and wheel tags name them.
_ARCH = {
    "linux": {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"},
    "windows": {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"},
    "macos": {"arm64": "arm64", "aarch64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"},
}


def os_name(sys_platform: str = sys.platform) -> str:
    """ "linux", "windows" or "macos" (other systems keep their own name)."""
    for prefix, name in _OS_NAMES.items():
        if sys_platform.startswith(prefix):
            return name
    return sys_platform


def normalise_arch(machine: str, os: str) -> str:
    """Map `uname -m` / PROCESSOR_ARCHITECTURE spellings onto the names each OS's wheels use."""
    lowered = machine.strip().lower()
    return _ARCH.get(os, {}).get(lowered, lowered)


def _machine(environ: Mapping[str, str]) -> str:
    if hasattr(os, "uname"):
        return os.uname().machine
    # Windows: a 32-bit Python on 64-bit Windows reports x86 here, which is what its wheels need.
    return environ.get("PROCESSOR_ARCHITECTURE", "")


def python_tag() -> str:
    """ "3.11", or "3.13t" for a free-threaded build (its wheels are a separate ABI)."""
    abiflags = getattr(sys, "abiflags", None)  # POSIX only; loading sysconfig costs ~1 ms
    if abiflags is not None:
        free_threaded = "t" in abiflags
    else:
        import sysconfig

        free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return tag_of(f"{sys.version_info[0]}.{sys.version_info[1]}", free_threaded)


def tag_of(version: str, free_threaded: bool) -> str:
    """The matrices' spelling of a Python: "3.13.1" → "3.13", or "3.13t" when free-threaded
    (the one rule; the fix command of a free-threaded Python once lost its `t`)."""
    return ".".join(version.split(".")[:2]) + ("t" if free_threaded else "")


def libc(root: Path = Path("/")) -> str | None:
    """ "glibc 2.36" from the running C library, "musl" when its loader is present, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        found = None
    if found:
        name, _, version = found.partition(" ")
        return f"{'glibc' if name == 'glibc' else name} {version}".strip()
    lib = root / "lib"
    try:
        if any(entry.name.startswith("ld-musl-") for entry in lib.iterdir()):
            return "musl"
    except OSError:
        pass
    return None


def is_wsl(root: Path = Path("/")) -> bool:
    """WSL kernels name themselves "microsoft" (WSL1) or "...-microsoft-standard-WSL2"."""
    try:
        release = (root / "proc/sys/kernel/osrelease").read_text(errors="replace").lower()
    except OSError:
        return False
    return "microsoft" in release or "wsl" in release


def current_platform(
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
    findings: Findings | None = None,
) -> Platform:
    """The platform this interpreter runs on (the one whose wheels we would install)."""
    started = now()
    env = os.environ if environ is None else environ
    system = os_name()
    found = Platform(
        os=system,
        arch=normalise_arch(_machine(env), system),
        python=python_tag(),
        libc=libc(root),
        wsl=system == "linux" and is_wsl(root),
    )
    if findings is not None:
        described = f"{found.key} python {found.python}"
        if found.libc:
            described += f" {found.libc}"
        if found.wsl:
            described += " WSL"
        findings.record("platform", described, "sys.platform, os.uname, os.confstr", started)
    return found


#: Where a node's name comes from, first set wins: ours, then the scheduler's own (Slurm sets
#: SLURMD_NODENAME in every task; a Kubernetes pod's hostname is the pod's, so a Job passes the
#: node's name in ENVSETUP_HOSTNAME from the downward API's spec.nodeName).
HOSTNAME_VARIABLES = ("ENVSETUP_HOSTNAME", "SLURMD_NODENAME")


def hostname(environ: Mapping[str, str] | None = None, findings: Findings | None = None) -> str:
    """The name of the node, as a fleet's plan names it ("node titan-v01")."""
    started = now()
    env = os.environ if environ is None else environ
    for variable in HOSTNAME_VARIABLES:
        value = (settings.get(variable, env) or "").strip()
        if value:
            if findings is not None:
                findings.record("hostname", value, f"env {variable}", started)
            return value
    try:
        name, source = os.uname().nodename, "os.uname"  # socket would cost start-up time
    except AttributeError:  # Windows
        import socket

        name, source = socket.gethostname(), "socket.gethostname"
    if findings is not None:
        findings.record("hostname", name, source, started)
    return name
