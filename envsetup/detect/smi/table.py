"""The default `nvidia-smi` table, including MIG rows, cut names and header lines a web page
broke apart.
"""

from __future__ import annotations

import re
from dataclasses import replace

from envsetup.detect.smi.report import SmiReport, _unparseable
from envsetup.detect.smi.values import (
    _BUS_ID,
    _bus_id,
    _cuda,
    _driver,
    _is_number,
    _mig_mode,
    _total,
    _value,
)
from envsetup.model.machine import Gpu, MigDevice

# A web page or a chat client may break the header line after each field ("NVIDIA-SMI 517.00"
# / "Driver Version: 517.00" / "CUDA Version: 11.7"): line breaks and box marks count as spaces.
_TABLE_HEADER = re.compile(r"NVIDIA-SMI[ \t]+[0-9.]+[\s|]+(?:Driver|KMD)[ \t]+Version[ \t]*:")
_GPU_ROW_END = ("On", "Off", "WDDM", "TCC", "MCDM", "N/A", "ERR!")


def _read_table(text: str, lines: list[str]) -> SmiReport | None:
    """The default table, any layout. The text is read as one stream of cells between "|"
    marks, so box widths and lines that a web page re-wrapped or joined do not matter; a GPU
    row is the cell followed by a cell that starts with a bus id."""
    cells = [" ".join(cell.split()) for cell in " ".join(lines).split("|")]
    header = _TABLE_HEADER.search(text) is not None
    mig_column = "MIG M." in text
    gpus: list[Gpu] = []
    migs: list[tuple[int, MigDevice]] = []
    section = "gpus"
    for i, cell in enumerate(cells):
        following = cells[i + 1] if i + 1 < len(cells) else ""
        if cell.startswith("MIG devices"):
            section = "mig"
        elif cell.startswith("Processes"):
            section = "processes"
        elif section == "gpus" and _BUS_ID.match(following):
            gpu = _table_gpu(cell, following, _gpu_block(cells, i + 2), mig_column=mig_column)
            if gpu is not None:
                gpus.append(gpu)
        elif section == "mig":
            mig = _table_mig(cell, following)
            if mig is not None:
                migs.append(mig)
    if not header and not gpus and not migs:
        return None
    if not gpus:
        # Only the "MIG devices" table was pasted: its rows still say which GPUs are
        # partitioned (MIG on), though not their names or compute capabilities.
        gpus = [Gpu(index=index, mig_enabled=True) for index in sorted({i for i, _ in migs})]
    # nvidia-smi prints "No devices were found" instead of an empty table, so a header
    # without GPU rows is a cut-off output (or a crash, as WSL's segfaulting nvidia-smi).
    cut = () if gpus or not header else (_unparseable(_TABLE_CUT),)
    return SmiReport(
        "table",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        gpus=_attach_migs(gpus, migs),
        problems=cut,
    )


def _table_gpu(cell: str, bus_cell: str, block: list[str], *, mig_column: bool) -> Gpu | None:
    words = cell.split()
    if len(words) < 2 or not _is_number(words[0]):
        return None
    name = cell[len(words[0]) :].strip()
    if words[-1] in _GPU_ROW_END:
        name = name[: -len(words[-1])].strip()
    memory = next((_total(c) for c in block if re.search(r"MiB\s*$", c)), None)
    mig = next((_mig_mode(c) for c in block if c in ("Enabled", "Disabled")), None)
    return Gpu(
        index=int(words[0]),
        name=_value(name),
        memory_mib=memory,
        bus_id=_bus_id(bus_cell),
        mig_enabled=mig if mig_column else None,
    )


def _gpu_block(cells: list[str], start: int) -> list[str]:
    """The cells of one GPU's rows: from `start` up to the next GPU row or section."""
    end = start
    while end < len(cells):
        following = cells[end + 1] if end + 1 < len(cells) else ""
        if _BUS_ID.match(following) or cells[end].startswith(("Processes", "MIG devices")):
            break
        end += 1
    return cells[start:end]


def _table_mig(cell: str, memory_cell: str) -> tuple[int, MigDevice] | None:
    """A MIG devices row: "GPU GI CI MIG-Dev" numbers, then "used / total" memory."""
    words = cell.split()
    if len(words) != 4 or not all(map(_is_number, words)):
        return None
    gpu, gi, ci, dev = (int(word) for word in words)
    memory = _total(memory_cell) if "/" in memory_cell else None
    return gpu, MigDevice(index=dev, gpu_instance=gi, compute_instance=ci, memory_mib=memory)


def _attach_migs(gpus: list[Gpu], migs: list[tuple[int, MigDevice]]) -> tuple[Gpu, ...]:
    by_gpu: dict[int, list[MigDevice]] = {}
    for index, mig in migs:
        by_gpu.setdefault(index, []).append(mig)
    return tuple(
        replace(gpu, mig_devices=tuple(by_gpu[gpu.index])) if gpu.index in by_gpu else gpu
        for gpu in gpus
    )


_TABLE_CUT = "the nvidia-smi table ends before its first GPU row (output cut off or crashed)"
