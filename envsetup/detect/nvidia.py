"""NVIDIA facts from files and from `nvidia-smi`: the kernel module, device nodes, visibility.

The kernel module's version files are the cheapest source of the driver version (microseconds)
but they describe the host: a container can see them and still have no `/dev/nvidia*` to open,
which is why the device nodes are checked separately.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from envsetup import settings
from envsetup.detect.findings import Findings, now
from envsetup.detect.tool import find_tool
from envsetup.model.machine import driver_version

# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ..."
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Fri Oct 22 ..."
_PROC_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\S+)")

#: The one query `detect` runs when NVML cannot answer: every per-GPU fact in a single call.
QUERY_ARGS = (
    "--query-gpu=index,name,driver_version,memory.total,compute_cap,uuid,pci.bus_id",
    "--format=csv",
)

_WINDOWS_SMI = (
    Path("C:/Windows/System32/nvidia-smi.exe"),
    Path("C:/Program Files/NVIDIA Corporation/NVSMI/nvidia-smi.exe"),
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def sys_module_driver(root: Path, findings: Findings) -> str | None:
    """The loaded kernel module's version from `/sys/module/nvidia/version`."""
    started = now()
    value = driver_version(_read(root / "sys/module/nvidia/version"))
    findings.record("driver_version", value, "/sys/module/nvidia/version", started)
    return value


def proc_driver(root: Path, findings: Findings) -> str | None:
    """The kernel module's version from `/proc/driver/nvidia/version` (older kernels, no sysfs)."""
    started = now()
    text = _read(root / "proc/driver/nvidia/version")
    match = _PROC_VERSION.search(text or "")
    value = driver_version(match[1]) if match else None
    findings.record("driver_version", value, "/proc/driver/nvidia/version", started)
    return value


def device_nodes(root: Path, wsl: bool, findings: Findings) -> bool:
    """Whether this process can see the GPU device nodes (`/dev/dxg` on WSL)."""
    started = now()
    dev = root / "dev"
    if wsl:
        found = (dev / "dxg").exists()
        source = "/dev/dxg"
    else:
        try:
            names = {entry.name for entry in dev.iterdir() if entry.name.startswith("nvidia")}
        except OSError:
            names = set()
        found = "nvidiactl" in names and any(name[6:].isdigit() for name in names)
        source = "/dev/nvidiactl, /dev/nvidia[0-9]*"
    findings.record("device_nodes", found, source, started)
    return found


def visible_devices(environ: Mapping[str, str], findings: Findings) -> tuple[str, ...] | None:
    """CUDA_VISIBLE_DEVICES entries as written (None: unset, all); NVIDIA_VISIBLE_DEVICES noted."""
    started = now()
    container = settings.get("NVIDIA_VISIBLE_DEVICES", environ)
    if container is not None:
        findings.record("visible_gpus", container, "env NVIDIA_VISIBLE_DEVICES", started)
        if container.strip().lower() in ("none", "void", ""):
            findings.warn(
                f"NVIDIA_VISIBLE_DEVICES={container!r}: the container runtime was asked to "
                "give this container no GPU"
            )
    raw = settings.get("CUDA_VISIBLE_DEVICES", environ)
    if raw is None:
        return None
    findings.record("visible_gpus", raw, "env CUDA_VISIBLE_DEVICES", started)
    from envsetup.model.visibility import parse_entries

    return parse_entries(
        raw
    )  # what CUDA makes of them: envsetup.model.visibility, once GPUs are known


def smi_candidates(root: Path, os_name: str, wsl: bool) -> tuple[Path, ...]:
    """Places `nvidia-smi` lives outside PATH: WSL's driver folder, Windows' two locations."""
    if os_name == "windows":
        return _WINDOWS_SMI
    if wsl:
        return (root / "usr/lib/wsl/lib/nvidia-smi",)
    return ()


def locate_nvidia_smi(
    root: Path, environ: Mapping[str, str], os_name: str, wsl: bool, findings: Findings
) -> Path | None:
    started = now()
    found, broken = find_tool("nvidia-smi", environ, smi_candidates(root, os_name, wsl))
    if broken:
        findings.warn(broken)
    where = "nvidia-smi on PATH" + (" or in /usr/lib/wsl/lib" if wsl else "")
    findings.record("nvidia_smi", found, where, started)
    return found


NVIDIA_VENDOR = "0x10de"


def pci_devices(root: Path, findings: Findings) -> tuple[tuple[str, int], ...]:
    """(bus id, device id) of each NVIDIA display/3D controller in /sys/bus/pci/devices: the
    GPUs' identity when neither NVML nor nvidia-smi can list them (Linux only)."""
    started = now()
    try:
        folders = sorted((root / "sys/bus/pci/devices").iterdir())
    except OSError:
        folders = []
    found: list[tuple[str, int]] = []
    for folder in folders:
        vendor = (_read(folder / "vendor") or "").strip().lower()
        kind = (_read(folder / "class") or "").strip().lower()
        if vendor != NVIDIA_VENDOR or not kind.startswith("0x03"):
            continue
        try:
            found.append((folder.name, int((_read(folder / "device") or "").strip(), 16)))
        except ValueError:
            continue
    shown = ",".join(f"{bus} [10de:{device:04x}]" for bus, device in found) or None
    findings.record("pci_gpus", shown, "/sys/bus/pci/devices (vendor 0x10de)", started)
    return tuple(found)
