"""Intel XPU: only discrete and data-centre GPUs known by PCI device id count.

Conservative on purpose: every Intel laptop has an integrated GPU, and treating any Intel display
device as an XPU (as uv does) sends laptops to the xpu wheels. The known ids are data, in
matrices/intel.toml; integrated Arc graphics are not listed there, and a user who wants them says
so with ENVSETUP_BACKEND=xpu.
"""

from __future__ import annotations

from pathlib import Path

from envsetup.detect.findings import Findings, now

INTEL_VENDOR = "0x8086"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().lower()
    except OSError:
        return ""


def intel_xpu(root: Path, findings: Findings) -> bool:
    """True when a known discrete Intel GPU sits on the PCI bus (Linux sysfs)."""
    started = now()
    devices = root / "sys/bus/pci/devices"
    try:
        folders = list(devices.iterdir())
    except OSError:
        folders = []
    found = []
    known: frozenset[int] | None = None
    for folder in folders:
        if _read(folder / "vendor") != INTEL_VENDOR or not _read(folder / "class").startswith(
            ("0x03",)
        ):
            continue
        try:
            device = int(_read(folder / "device"), 16)
        except ValueError:
            continue
        if known is None:
            # Loaded here, at the first Intel display device: other machines never read TOML.
            from envsetup.matrices.intel_ids import discrete_ids

            known = discrete_ids()
        if device in known:
            found.append(f"{folder.name} [8086:{device:04x}]")
    findings.record(
        "xpu", ",".join(found) if found else None, "/sys/bus/pci/devices (known ids)", started
    )
    return bool(found)
