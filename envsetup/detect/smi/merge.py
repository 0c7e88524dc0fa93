"""Several outputs of one paste (`-L` then `--query-gpu`) read as one: the same GPU found
again by UUID, bus id or index fills in what the richest output lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from envsetup.model.machine import Gpu

if TYPE_CHECKING:
    from envsetup.detect.smi.report import SmiReport


_GPU_FIELDS = ("name", "memory_mib", "compute_capability", "uuid", "bus_id", "mig_enabled")


def fill_gaps(gpus: Sequence[Gpu], others: Sequence[Gpu]) -> tuple[Gpu, ...]:
    """`gpus` with the facts they lack taken from the same GPUs as another source lists them:
    matched by UUID, else bus id, else index when both list as many GPUs."""
    twins = _Twins(tuple(others), by_index=len(others) == len(gpus))
    return tuple(_fill(gpu, twin) if (twin := twins.of(gpu)) else gpu for gpu in gpus)


def _richness(report: SmiReport) -> int:
    facts = [report.driver_version, report.cuda_version]
    facts += [getattr(gpu, field) for gpu in report.gpus for field in _GPU_FIELDS]
    return sum(fact is not None for fact in facts)


def _merge(primary: SmiReport, others: list[SmiReport]) -> SmiReport:
    """`primary` with the facts it lacks taken from the other outputs of the same paste."""
    reports = [primary, *others]
    gpus = list(primary.gpus)
    for other in others:
        gpus = list(fill_gaps(gpus, other.gpus))
    return replace(
        primary,
        driver_version=next((r.driver_version for r in reports if r.driver_version), None),
        cuda_version=next((r.cuda_version for r in reports if r.cuda_version), None),
        nvml_version=next((r.nvml_version for r in reports if r.nvml_version), None),
        gpus=tuple(gpus),
    )


class _Twins:
    """Finds the same physical GPU in another output: by UUID, else bus id, else (when both
    outputs list as many GPUs) by index. Dictionaries keep a 16-GPU (or hostile) paste linear."""

    def __init__(self, gpus: tuple[Gpu, ...], *, by_index: bool) -> None:
        self.uuid: dict[str, Gpu] = {}
        self.bus: dict[str, Gpu] = {}
        self.index = {gpu.index: gpu for gpu in reversed(gpus)} if by_index else {}
        for gpu in gpus:
            self.add(gpu)

    def add(self, gpu: Gpu) -> None:
        if gpu.uuid:
            self.uuid.setdefault(gpu.uuid, gpu)
        if gpu.bus_id:
            self.bus.setdefault(_bus_key(gpu.bus_id), gpu)

    def of(self, gpu: Gpu) -> Gpu | None:
        if gpu.uuid and self.uuid:
            return self.uuid.get(gpu.uuid)
        if gpu.bus_id and self.bus:
            return self.bus.get(_bus_key(gpu.bus_id))
        return self.index.get(gpu.index)


def _bus_key(bus_id: str) -> str:
    """ "00000000:03:00.0" and "0000:03:00.0" (older drivers) name the same slot."""
    domain, _, rest = bus_id.lower().partition(":")
    return f"{domain.lstrip('0')}:{rest}"


def _fill(gpu: Gpu, twin: Gpu) -> Gpu:
    missing = {f: getattr(twin, f) for f in _GPU_FIELDS if getattr(gpu, f) is None}
    if gpu.name and twin.name and gpu.name.endswith("...") and twin.name.startswith(gpu.name[:-3]):
        missing["name"] = twin.name  # the table cuts long names; -L and -q do not
    if not gpu.mig_devices and twin.mig_devices:
        return replace(gpu, mig_devices=twin.mig_devices, **missing)
    return replace(gpu, **missing)
