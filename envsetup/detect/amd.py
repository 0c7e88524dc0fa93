"""AMD GPUs: gfx targets from the KFD topology in sysfs, `rocm_agent_enumerator` as fallback.

The gfx target ("gfx90a") is what ROCm wheels are built for, so it is the fact that matters;
KFD encodes it as major*10000 + minor*100 + stepping, with minor and stepping printed in hex
(90010 -> gfx90a). CPU nodes have no gfx target and are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from envsetup.detect.findings import Findings, now
from envsetup.detect.tool import find_tool, run_tool
from envsetup.model.machine import Gpu

KFD_NODES = "sys/class/kfd/kfd/topology/nodes"


def gfx_target(version: int) -> str | None:
    """90010 -> "gfx90a", 110000 -> "gfx1100", 0 (a CPU node) -> None."""
    if version <= 0:
        return None
    major, minor, stepping = version // 10000, (version // 100) % 100, version % 100
    return f"gfx{major}{minor:x}{stepping:x}"


def _properties(path: Path) -> dict[str, int]:
    found = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        try:
            found[key] = int(value.strip())
        except ValueError:
            continue
    return found


def _bus_id(props: Mapping[str, int]) -> str | None:
    """KFD's location_id is (bus << 8) | devfn; printed like NVIDIA's "0000:03:00.0"."""
    location = props.get("location_id", 0)
    if location <= 0:
        return None
    bus, devfn = location >> 8, location & 0xFF
    domain = max(props.get("domain", 0), 0)
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"


def _memory_mib(node: Path) -> int | None:
    total = sum(
        _properties(bank / "properties").get("size_in_bytes", 0)
        for bank in _children(node / "mem_banks")
    )
    return max(total, 0) // (1024 * 1024) or None  # a corrupt negative size is no size


def _children(path: Path) -> list[Path]:
    try:
        return sorted(path.iterdir(), key=lambda child: (len(child.name), child.name))
    except OSError:
        return []


def kfd_gpus(root: Path, first_index: int, findings: Findings) -> tuple[Gpu, ...] | None:
    """AMD GPUs from the KFD topology; None when the topology is absent (no amdgpu driver)."""
    started = now()
    nodes = root / KFD_NODES
    if not nodes.is_dir():
        findings.record("rocm", None, f"/{KFD_NODES}", started)
        return None
    gpus: list[Gpu] = []
    for node in _children(nodes):
        props = _properties(node / "properties")
        arch = gfx_target(props.get("gfx_target_version", 0))
        if arch is None:
            continue
        name = _read_name(node)
        gpus.append(
            Gpu(
                index=first_index + len(gpus),
                name=name,
                memory_mib=_memory_mib(node),
                bus_id=_bus_id(props),
                vendor="amd",
                arch=arch,
            )
        )
    findings.record("rocm", ",".join(gpu.arch or "" for gpu in gpus), f"/{KFD_NODES}", started)
    if gpus and not (root / "dev/kfd").exists():
        findings.warn(
            "AMD GPUs are listed by the kernel but /dev/kfd is missing: ROCm cannot use them "
            "here (in a container, pass --device=/dev/kfd --device=/dev/dri)"
        )
    return tuple(gpus)


def _read_name(node: Path) -> str | None:
    try:
        name = (node / "name").read_text(errors="replace").strip()
    except OSError:
        return None
    return name or None


def enumerator_gpus(
    root: Path, environ: Mapping[str, str], first_index: int, timeout: float, findings: Findings
) -> tuple[Gpu, ...] | None:
    """Fallback: `rocm_agent_enumerator` prints one gfx target per agent (gfx000 = CPU)."""
    started = now()
    executable, _ = find_tool(
        "rocm_agent_enumerator", environ, (root / "opt/rocm/bin/rocm_agent_enumerator",)
    )
    if executable is None:
        return None
    result = run_tool([str(executable)], timeout=timeout)
    if result.problem is not None:
        findings.warn(f"rocm_agent_enumerator: {result.problem.message}")
        return None
    targets = [
        line.strip()
        for line in result.stdout.splitlines()
        if line.strip().startswith("gfx") and line.strip() != "gfx000"
    ]
    findings.record("rocm", ",".join(targets), str(executable), started)
    return tuple(
        Gpu(index=first_index + offset, vendor="amd", arch=target)
        for offset, target in enumerate(targets)
    )
