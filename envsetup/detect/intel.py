"""Intel XPU: only discrete and data-centre GPUs known by PCI device id count.

Conservative on purpose: every Intel laptop has an integrated GPU, and treating any Intel display
device as an XPU (as uv does) sends laptops to the xpu wheels. Integrated Arc graphics are not
listed; a user who wants them says so with ENVSETUP_BACKEND=xpu.
"""

from __future__ import annotations

from pathlib import Path

from envsetup.detect.findings import Findings, now

INTEL_VENDOR = "0x8086"

#: Discrete Intel GPUs by PCI device id. Source: Linux `include/drm/intel/pciids.h` and Intel
#: compute-runtime device lists (DG2/Alchemist, ATS-M/Flex, PVC/Max, BMG/Battlemage).
DISCRETE_DEVICE_IDS = frozenset(
    [
        *range(0x5690, 0x5698),  # DG2 mobile: Arc A-series M
        *range(0x56A0, 0x56A7),  # DG2 desktop: Arc A310-A770
        0x56BE,
        0x56BF,  # DG2 embedded
        0x56C0,
        0x56C1,  # ATS-M: Data Center GPU Flex 170/140
        0x0BD0,
        *range(0x0BD5, 0x0BDC),  # PVC: Data Center GPU Max
        0xE202,
        0xE209,
        0xE20B,
        0xE20C,
        0xE20D,
        0xE210,
        0xE211,
        0xE212,
        0xE215,
        0xE216,  # BMG-G21: Arc B570/B580, Pro B-series
        *range(0xE220, 0xE224),  # BMG-G31
    ]
)


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
    for folder in folders:
        if _read(folder / "vendor") != INTEL_VENDOR or not _read(folder / "class").startswith(
            ("0x03",)
        ):
            continue
        try:
            device = int(_read(folder / "device"), 16)
        except ValueError:
            continue
        if device in DISCRETE_DEVICE_IDS:
            found.append(f"{folder.name} [8086:{device:04x}]")
    findings.record(
        "xpu", ",".join(found) if found else None, "/sys/bus/pci/devices (known ids)", started
    )
    return bool(found)
