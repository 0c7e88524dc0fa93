"""`nvidia-smi -q`: the indented key : value log, one block per GPU."""

from __future__ import annotations

import re

from envsetup.detect.smi.report import SmiReport
from envsetup.detect.smi.values import (
    _BUS_ID,
    _bus_id,
    _cuda,
    _driver,
    _int,
    _mib,
    _mig_mode,
    _uuid,
    _value,
)
from envsetup.model.machine import Gpu, MigDevice

_Q_GPU = re.compile(r"^\s*GPU\s+(" + _BUS_ID.pattern + r")\s*$")


def _read_query_log(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi -q`: indented "Key : value" lines. Keys are matched with any width and
    without "(deprecated)"-style suffixes; sections come from indentation when the paste kept
    it, else from the last section header seen."""
    if "NVSMI LOG" not in text and not re.search(r"^[ \t]*Attached GPUs[ \t]*:", text, re.M):
        return None
    gpus: list[_QGpu] = []
    sections: list[tuple[int, str]] = []
    for line in lines:
        gpu_header = _Q_GPU.match(line)
        if gpu_header:
            gpus.append(_QGpu(bus_id=gpu_header.group(1)))
            sections = []
            continue
        key, colon, value = line.partition(":")  # keys hold no colon; values may
        if not gpus or not key.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if not colon or not value.strip():  # a section header: "MIG Mode", "FB Memory Usage"
            sections = [s for s in sections if s[0] < indent] + [(indent, _key(key))]
            continue
        inner = [s[1] for s in sections if s[0] < indent] or [s[1] for s in sections[-1:]]
        gpus[-1].take(_key(key), value.strip(), inner)
    return SmiReport(
        "query",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        gpus=tuple(gpu.build(i) for i, gpu in enumerate(gpus)),
    )


def _key(text: str) -> str:
    """ "Minor Number (deprecated)" -> "minor number"."""
    return text.partition("(")[0].partition("[")[0].strip().lower()


class _QGpu:
    """Accumulates one GPU section of `-q` output."""

    def __init__(self, bus_id: str) -> None:
        self.fields: dict[str, str] = {"bus id": bus_id}
        self.migs: list[dict[str, str]] = []

    def take(self, key: str, value: str, path: list[str]) -> None:
        section = path[-1] if path else ""
        # Drivers before 590 nest "MIG Device" sections under "MIG Devices"; 590+ put them
        # straight under the GPU, with "Shared FB Memory Usage".
        if "mig devices" in path or "mig device" in path:
            if key == "index" or not self.migs:
                self.migs.append({})
            self.migs[-1].setdefault(f"{section}/{key}", value)
            self.migs[-1].setdefault(key, value)
        else:
            self.fields.setdefault(f"{section}/{key}", value)
            self.fields.setdefault(key, value)

    def build(self, index: int) -> Gpu:
        get = self.fields.get
        migs = tuple(
            MigDevice(
                index=_int(mig.get("index")),
                gpu_instance=_int(mig.get("gpu instance id")),
                compute_instance=_int(mig.get("compute instance id")),
                memory_mib=_mib(
                    mig.get("fb memory usage/total") or mig.get("shared fb memory usage/total")
                ),
            )
            for mig in self.migs
        )
        return Gpu(
            index=index,
            name=_value(get("product name")),
            memory_mib=_mib(get("fb memory usage/total")),
            uuid=_uuid(get("gpu uuid")),
            bus_id=_bus_id(get("bus id")),
            mig_enabled=_mig_mode(get("mig mode/current")),
            mig_devices=migs,
        )
