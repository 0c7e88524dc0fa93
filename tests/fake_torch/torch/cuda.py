"""torch.cuda: devices come from FAKE_TORCH_GPUS, filtered by *_VISIBLE_DEVICES like the runtime."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import version


@dataclass
class _CudaDeviceProperties:
    name: str
    total_memory: int
    major: int
    minor: int


def _all_gpus() -> list[_CudaDeviceProperties]:
    gpus = []
    for entry in filter(None, os.environ.get("FAKE_TORCH_GPUS", "").split(";")):
        name, mib, cc = entry.rsplit(":", 2)
        major, minor = cc.split(".")
        gpus.append(_CudaDeviceProperties(name, int(mib) * 1024 * 1024, int(major), int(minor)))
    return gpus


def _visible() -> list[_CudaDeviceProperties]:
    if version.cuda is None and version.hip is None:
        return []  # a CPU-only build sees no GPU, whatever the machine has
    gpus = _all_gpus()
    variable = "HIP_VISIBLE_DEVICES" if version.hip else "CUDA_VISIBLE_DEVICES"
    listed = os.environ.get(variable)
    if listed is None:
        return gpus
    picked = []
    for entry in listed.split(","):
        if not entry.strip().isdigit() or int(entry) >= len(gpus):
            break  # the runtime stops at the first entry it cannot use
        picked.append(gpus[int(entry)])
    return picked


def is_available() -> bool:
    return bool(_visible())


def device_count() -> int:
    return len(_visible())


def get_device_properties(index: int) -> _CudaDeviceProperties:
    return _visible()[index]


def get_device_name(index: int = 0) -> str:
    return _visible()[index].name


def get_arch_list() -> list[str]:
    if not is_available():
        return []
    return [arch for arch in os.environ.get("FAKE_TORCH_ARCHS", "").split(",") if arch]
