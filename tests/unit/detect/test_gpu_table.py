"""matrices/gpus.toml: its schema, name matching, and the paths that use it (pastes, sysfs)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support import fakes

from envsetup.detect import detect, machine_from_nvidia_smi
from envsetup.matrices import default_directory, load
from envsetup.matrices.gpu_table import load_table, normalise_name
from envsetup.model.machine import Platform
from envsetup.model.plan import Request
from envsetup.resolve import resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

DATA = Path(__file__).parents[2] / "data" / "nvidia-smi"
ROWS = tomllib.loads((default_directory() / "gpus.toml").read_text())["gpu"]


def test_schema() -> None:
    assert ROWS
    for row in ROWS:
        where = row.get("names")
        assert set(row) <= {"names", "cc", "pci", "pci_source", "source", "notes"}, where
        assert row["names"] and all(isinstance(n, str) and n.strip() for n in row["names"])
        assert re.fullmatch(r"\d+\.\d", row["cc"]), where
        assert row["source"].startswith("https://"), where
        if "pci" in row:
            assert all(re.fullmatch(r"0x[0-9a-f]{4}", p) for p in row["pci"]), where
            assert row["pci_source"].startswith("https://"), where


def test_no_name_or_pci_id_means_two_things() -> None:
    by_name: dict[str, str] = {}
    by_pci: dict[str, str] = {}
    for row in ROWS:
        for name in row["names"]:
            key = normalise_name(name)
            assert key, name
            assert by_name.setdefault(key, row["cc"]) == row["cc"], name
        for device in row.get("pci", ()):
            assert device not in by_pci, device
            by_pci[device] = row["cc"]


def test_every_generation_kepler_to_blackwell_is_present() -> None:
    majors = {row["cc"].split(".")[0] for row in ROWS}
    assert {"3", "5", "6", "7", "8", "9", "10", "12"} <= majors


@pytest.mark.parametrize(
    ("printed", "cc"),
    [
        ("NVIDIA GeForce GTX 1080 Ti", "6.1"),
        ("GeForce GTX 1080 Ti", "6.1"),
        ("NVIDIA TITAN V", "7.0"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("Tesla V100-PCIE-32GB", "7.0"),
        ("Tesla T4", "7.5"),
        ("NVIDIA GeForce RTX 2080 with Max-Q Design", "7.5"),
        ("Quadro RTX 6000", "7.5"),
        ("NVIDIA A100-SXM4-80GB", "8.0"),
        ("NVIDIA A100 80GB PCIe", "8.0"),
        ("NVIDIA A10", "8.6"),
        ("NVIDIA A30", "8.0"),
        ("NVIDIA A40", "8.6"),
        ("NVIDIA GeForce RTX 3090", "8.6"),
        ("NVIDIA L4", "8.9"),
        ("NVIDIA L40S", "8.9"),
        ("NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "8.9"),
        ("NVIDIA H100 80GB HBM3", "9.0"),
        ("NVIDIA H100 PCIe", "9.0"),
        ("NVIDIA H200", "9.0"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA GB200", "10.0"),
        ("NVIDIA GeForce RTX 5090", "12.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "12.0"),
        ("NVIDIA GeForce RTX 2080 ...", "7.5"),  # cut short, but every 2080 is sm_75
        ("Tesla K80", "3.7"),
    ],
)
def test_names_as_nvidia_smi_prints_them(printed: str, cc: str) -> None:
    model = load_table().by_name(printed)
    assert model is not None and model.cc == cc


@pytest.mark.parametrize("printed", ["NVIDIA GeForce ...", "NVIDIA RTX 6000D", "Acme GPU"])
def test_unknown_or_ambiguous_names_are_not_guessed(printed: str) -> None:
    assert load_table().by_name(printed) is None


def test_table_agrees_with_every_fixture_that_prints_compute_cap() -> None:
    """Primary evidence: outputs that show compute_cap next to the name."""
    from envsetup.detect.smi import parse

    checked = 0
    for path in sorted(DATA.iterdir()):
        if path.suffix in (".json", ".md"):
            continue
        for gpu in parse(path.read_text(errors="replace")).gpus:
            model = None if gpu.name is None else load_table().by_name(gpu.name)
            if gpu.compute_capability and model is not None:
                assert model.cc == gpu.compute_capability, (path.name, gpu.name)
                checked += 1
    assert checked


def _gtx_1080_ti_table() -> str:
    """A default nvidia-smi table from a driver-580 machine with a GTX 1080 Ti: no compute_cap."""
    text = (DATA / "arch-550-rtx4070.txt").read_text()
    return (
        text.replace("550.40.07", "580.82.07")
        .replace("CUDA Version: 12.4", "CUDA Version: 13.0")
        .replace("NVIDIA GeForce RTX 4070   ", "NVIDIA GeForce GTX 1080 Ti")
    )


def test_pasted_gtx_1080_ti_gets_a_build_confirmed_to_have_pascal() -> None:
    """The issue's case: planned as 2.14.0+cu130 (no Pascal kernels) when the name was ignored."""
    platform = Platform("linux", "x86_64", "3.12")
    machine = machine_from_nvidia_smi(_gtx_1080_ti_table(), platform=platform)
    assert [gpu.compute_capability for gpu in machine.gpus] == ["6.1"]
    assert any("matrices/gpus.toml" in item.source for item in machine.evidence)
    plan = resolve(machine, Request())
    archs = load().arch_list(plan.torch, plan.variant, platform.key)
    assert archs is not None and archs.confirmed and archs.covers("6.1")


def test_unknown_pasted_name_says_so() -> None:
    text = _gtx_1080_ti_table().replace("NVIDIA GeForce GTX 1080 Ti", "NVIDIA GeForce GTX 9999")
    machine = machine_from_nvidia_smi(text, platform=Platform("linux", "x86_64", "3.12"))
    assert machine.gpus[0].compute_capability is None
    assert (
        "compute capability unknown for GPU 'NVIDIA GeForce GTX 9999'; pass --compute-cap"
        in machine.warnings
    )


def _pci(root: Path, bus: str, vendor: str, device: str, kind: str = "0x030000") -> None:
    fakes.write(root, f"sys/bus/pci/devices/{bus}/vendor", vendor + "\n")
    fakes.write(root, f"sys/bus/pci/devices/{bus}/device", device + "\n")
    fakes.write(root, f"sys/bus/pci/devices/{bus}/class", kind + "\n")


def test_driver_without_nvml_or_nvidia_smi_reads_pci_ids(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    _pci(tmp_path, "0000:01:00.0", "0x10de", "0x1db4", "0x030200")  # V100 PCIe, 3D controller
    _pci(tmp_path, "0000:02:00.0", "0x10de", "0x2b85")  # RTX 5090
    _pci(tmp_path, "0000:03:00.0", "0x10de", "0x10f0", "0x040300")  # its HDMI audio function
    _pci(tmp_path, "0000:04:00.0", "0x10de", "0xffff")  # not in the table
    _pci(tmp_path, "0000:05:00.0", "0x8086", "0x56a0")  # another vendor
    machine = detect(root=tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert [gpu.compute_capability for gpu in machine.gpus] == ["7.0", "12.0", None]
    assert [gpu.bus_id for gpu in machine.gpus][:2] == ["0000:01:00.0", "0000:02:00.0"]
    warnings = machine.warnings
    assert any("[10de:ffff]" in warning and "--compute-cap" in warning for warning in warnings)
    assert any(item.source == "/sys/bus/pci/devices (vendor 0x10de)" for item in machine.evidence)


def test_no_driver_means_no_pci_guess(tmp_path: Path) -> None:
    """A GPU with no driver loaded cannot run CUDA: the PCI ids must not make it a CUDA box."""
    _pci(tmp_path, "0000:01:00.0", "0x10de", "0x2b85")
    machine = detect(root=tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert machine.gpus == ()
