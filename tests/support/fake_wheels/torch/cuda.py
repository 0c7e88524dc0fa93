"""torch.cuda on a simulated machine: the same errors, in the same places, as the real runtime."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch._build import ARCHS, CUDA, HIP

NO_DRIVER = (
    "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and "
    "installed a driver from http://www.nvidia.com/Download/index.aspx"
)
NO_KERNEL = (
    "CUDA error: no kernel image is available for execution on the device\n"
    "CUDA kernel errors might be asynchronously reported at some other API call"
)


@dataclass
class _CudaDeviceProperties:
    name: str
    total_memory: int
    major: int
    minor: int


def _visible() -> list[_CudaDeviceProperties]:
    gpus = []
    for entry in filter(None, os.environ.get("FAKE_TORCH_GPUS", "").split(";")):
        name, mib, cc = entry.rsplit(":", 2)
        major, minor = cc.split(".")
        gpus.append(_CudaDeviceProperties(name, int(mib) * 1024 * 1024, int(major), int(minor)))
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return gpus
    picked = []
    for entry in listed.split(","):
        if not entry.strip().isdigit() or int(entry) >= len(gpus):
            break  # the runtime stops at the first entry it cannot use
        picked.append(gpus[int(entry)])
    return picked


def _init_error() -> Exception | None:
    if CUDA is None and HIP is None:
        return AssertionError("Torch not compiled with CUDA enabled")
    if not os.environ.get("FAKE_TORCH_GPUS"):
        return RuntimeError(NO_DRIVER)
    driver = os.environ.get("FAKE_TORCH_DRIVER_CUDA")
    if driver and CUDA and int(driver.split(".")[0]) < int(CUDA.split(".")[0]):
        major, minor = (int(part) for part in driver.split("."))
        found = major * 1000 + minor * 10
        return RuntimeError(
            f"The NVIDIA driver on your system is too old (found version {found})."
            " Please update your GPU driver by downloading and installing a new version from the"
            " URL: http://www.nvidia.com/Download/index.aspx"
        )
    if not _visible():
        return RuntimeError("No CUDA GPUs are available")
    return None


def init() -> None:
    error = _init_error()
    if error is not None:
        raise error


def is_available() -> bool:
    return _init_error() is None


def device_count() -> int:
    return len(_visible()) if is_available() else 0


def get_arch_list() -> list[str]:
    return list(ARCHS) if is_available() else []


def _device(index: int) -> _CudaDeviceProperties:
    init()
    gpus = _visible()
    if not 0 <= index < len(gpus):
        raise RuntimeError("CUDA error: invalid device ordinal")
    return gpus[index]


def get_device_properties(index: int) -> _CudaDeviceProperties:
    return _device(index)


def get_device_name(index: int = 0) -> str:
    return _device(index).name


def get_device_capability(index: int = 0) -> tuple[int, int]:
    gpu = _device(index)
    return gpu.major, gpu.minor


def launch(index: int) -> None:
    """A kernel launch: fails like the runtime when the wheel has no code for this GPU."""
    gpu = _device(index)
    for arch in ARCHS:
        kind, _, digits = arch.partition("_")
        major, minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and major == gpu.major and minor <= gpu.minor:
            return
        if kind == "compute" and (major, minor) <= (gpu.major, gpu.minor):
            return
    raise RuntimeError(NO_KERNEL)


def synchronize(device: object = None) -> None:
    init()
