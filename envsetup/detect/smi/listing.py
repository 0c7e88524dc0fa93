"""The short outputs: `nvidia-smi -L` (GPUs and MIG devices by UUID) and `--version`."""

from __future__ import annotations

import re
from dataclasses import replace

from envsetup.detect.smi.report import SmiReport
from envsetup.detect.smi.values import _cuda, _driver, _uuid, _value, _version_after
from envsetup.model.machine import Gpu, MigDevice


def _read_version(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi --version`: "NVIDIA-SMI version : ...", "DRIVER version : ..." lines."""
    if not re.search(r"NVIDIA-SMI version\s*:", text, re.IGNORECASE):
        return None
    return SmiReport(
        "version",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        nvml_version=_version_after(text, "NVML version"),
    )


# Searched anywhere, not per line: web pages join -L lines into one ("GPU 0: ... GPU 1: ...").
# Bounded lengths keep a hostile text linear.
_L_ENTRY = re.compile(
    r"\bGPU (\d{1,3}): ([^(\n]{0,120})\(UUID: ?([^)\n]{0,120})\)"
    r"|\bMIG[ \t]+(\S{1,20})[ \t]+Device[ \t]+(\d{1,3}):[ \t]*\(UUID: ?([^)\n]{0,120})\)"
)


def _read_list(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi -L`: a "GPU i: name (UUID: ...)" entry per GPU; the "MIG ..." entries
    after a GPU are its MIG devices, not GPUs."""
    listed: list[tuple[Gpu, list[MigDevice]]] = []
    for entry in _L_ENTRY.finditer(text):
        index, name, uuid, profile, mig_index, mig_uuid = entry.groups()
        if index is not None:
            listed.append((Gpu(index=int(index), name=_value(name), uuid=_uuid(uuid)), []))
        elif listed:
            listed[-1][1].append(_list_mig(profile, mig_index, mig_uuid))
    gpus = tuple(
        replace(gpu, mig_enabled=True, mig_devices=tuple(migs)) if migs else gpu
        for gpu, migs in listed
    )
    return SmiReport("list", gpus=gpus) if gpus else None


def _list_mig(profile: str, index: str, uuid_text: str) -> MigDevice:
    uuid = _uuid(uuid_text)
    # Drivers before 470 named MIG devices "MIG-GPU-<uuid>/<gi>/<ci>".
    ids = re.search(r"/(\d+)/(\d+)$", uuid or "")
    return MigDevice(
        index=int(index),
        name=profile,
        uuid=uuid,
        gpu_instance=int(ids.group(1)) if ids else None,
        compute_instance=int(ids.group(2)) if ids else None,
    )
