"""NVML and libcuda through ctypes: the driver's own answers, in-process, in milliseconds.

NVML gives the driver version, the newest CUDA it supports and every GPU (name, memory, compute
capability, UUID, bus id, MIG) without creating a CUDA context, so the process stays safe to fork
and no GPU memory is touched. `cuDriverGetVersion` needs no `cuInit` either.

The ctypes calls only collect raw values into `NvmlReport`; `interpret` turns them into facts.
That split is the seam tests use: the calls run for real against whatever library is present
(none on a machine without a driver), and the interpretation is tested on raw values.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envsetup.machine import Gpu, MigDevice, Problem

NVML_SUCCESS = 0
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

_NAME_SIZE = 96  # NVML_DEVICE_NAME_V2_BUFFER_SIZE
_TEXT_SIZE = 96  # >= NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE (80), NVML_DEVICE_UUID_V2 (96)

_LINUX_DIRS = ("usr/lib64", "usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu")


class _Memory(ctypes.Structure):
    _fields_ = (
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    )


class _PciInfo(ctypes.Structure):
    _fields_ = (
        ("busIdLegacy", ctypes.c_char * 16),
        ("domain", ctypes.c_uint),
        ("bus", ctypes.c_uint),
        ("device", ctypes.c_uint),
        ("pciDeviceId", ctypes.c_uint),
        ("pciSubSystemId", ctypes.c_uint),
        ("busId", ctypes.c_char * 32),
    )


@dataclass(frozen=True)
class RawMig:
    name: bytes | None = None
    uuid: bytes | None = None
    memory_total: int | None = None  # bytes


@dataclass(frozen=True)
class RawDevice:
    """One GPU as NVML answered; None where a call failed or is not supported."""

    name: bytes | None = None
    memory_total: int | None = None  # bytes
    capability: tuple[int, int] | None = None
    uuid: bytes | None = None
    bus_id: bytes | None = None
    mig_mode: int | None = None  # 1 enabled, 0 disabled, None unsupported
    mig: tuple[RawMig, ...] = ()


@dataclass(frozen=True)
class NvmlReport:
    """What one NVML session returned, before interpretation."""

    library: str
    driver: bytes | None = None
    cuda: int | None = None  # 13000 for CUDA 13.0
    devices: tuple[RawDevice, ...] = ()
    init_error: tuple[int, str] | None = None  # (nvmlReturn_t, nvmlErrorString)


def library_candidates(stem: str, root: Path, os_name: str, wsl: bool) -> tuple[str, ...]:
    """Where `stem` ("nvidia-ml", "cuda") may live: the loader's search first, then known
    folders under `root` (WSL puts the driver's libraries outside the loader's path)."""
    if os_name == "windows":
        if stem == "nvidia-ml":
            return ("nvml.dll", "C:/Program Files/NVIDIA Corporation/NVSMI/nvml.dll")
        return ("nvcuda.dll",)
    if os_name != "linux":
        return ()
    filename = f"lib{stem}.so.1"
    found = [filename] if root == Path("/") else []
    folders = ("usr/lib/wsl/lib", *_LINUX_DIRS) if wsl else _LINUX_DIRS
    found.extend(str(root / folder / filename) for folder in folders)
    return tuple(found)


def _load(candidates: Sequence[str]) -> tuple[ctypes.CDLL, str] | None:
    for candidate in candidates:
        try:
            return ctypes.CDLL(candidate), candidate
        except OSError:
            continue
    return None


class _Library:
    """A loaded NVML/libcuda; `call` tries symbol names in order (newest first) since old
    drivers lack the `_v2`/`_v3` entry points. -1 when none exists."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def call(self, names: str | tuple[str, ...], *args: object) -> int:
        for symbol in (names,) if isinstance(names, str) else names:
            function = getattr(self.lib, symbol, None)
            if function is not None:
                return int(function(*args))
        return -1

    def text(self, name: str, *args: object) -> bytes | None:
        buffer = ctypes.create_string_buffer(_TEXT_SIZE)
        if self.call(name, *args, buffer, ctypes.c_uint(_TEXT_SIZE)) != NVML_SUCCESS:
            return None
        return buffer.value

    def error_string(self, code: int) -> str:
        function = getattr(self.lib, "nvmlErrorString", None)
        if function is None:
            return f"error {code}"
        function.restype = ctypes.c_char_p
        message = function(code)
        return message.decode(errors="replace") if isinstance(message, bytes) else f"error {code}"


def query_nvml(candidates: Sequence[str], *, shutdown: bool = True) -> NvmlReport | None:
    """One NVML session (init, queries, shutdown); None when no NVML library can be loaded.

    `shutdown=False` leaves NVML initialised: a process about to exit (the CLI) saves the ~10 ms
    `nvmlShutdown` takes on an H100, since exit releases it anyway. Library callers keep it."""
    loaded = _load(candidates)
    if loaded is None:
        return None
    lib, name = _Library(loaded[0]), loaded[1]
    code = lib.call(("nvmlInit_v2", "nvmlInit"))
    if code != NVML_SUCCESS:
        return NvmlReport(library=name, init_error=(code, lib.error_string(code)))
    try:
        driver = lib.text("nvmlSystemGetDriverVersion")
        cuda = ctypes.c_int()
        cuda_call = ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion")
        has_cuda = lib.call(cuda_call, ctypes.byref(cuda)) == NVML_SUCCESS
        count = ctypes.c_uint()
        if lib.call(("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"), ctypes.byref(count)):
            count.value = 0
        devices = tuple(_device(lib, index) for index in range(count.value))
    finally:
        if shutdown:
            lib.call("nvmlShutdown")
    return NvmlReport(
        library=name, driver=driver, cuda=cuda.value if has_cuda else None, devices=devices
    )


def _device(lib: _Library, index: int) -> RawDevice:
    handle = ctypes.c_void_p()
    by_index = ("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
    if lib.call(by_index, ctypes.c_uint(index), ctypes.byref(handle)) != NVML_SUCCESS:
        return RawDevice()
    major, minor = ctypes.c_int(), ctypes.c_int()
    capability = None
    call = "nvmlDeviceGetCudaComputeCapability"
    if lib.call(call, handle, ctypes.byref(major), ctypes.byref(minor)) == NVML_SUCCESS:
        capability = (major.value, minor.value)
    pci = _PciInfo()
    pci_call = ("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2")
    bus_id = pci.busId if lib.call(pci_call, handle, ctypes.byref(pci)) == NVML_SUCCESS else None
    current, pending = ctypes.c_uint(), ctypes.c_uint()
    mig_mode = None
    if lib.call("nvmlDeviceGetMigMode", handle, ctypes.byref(current), ctypes.byref(pending)) == 0:
        mig_mode = current.value
    return RawDevice(
        name=lib.text("nvmlDeviceGetName", handle),
        memory_total=_memory(lib, handle),
        capability=capability,
        uuid=lib.text("nvmlDeviceGetUUID", handle),
        bus_id=bus_id,
        mig_mode=mig_mode,
        mig=_migs(lib, handle) if mig_mode == 1 else (),
    )


def _memory(lib: _Library, handle: ctypes.c_void_p) -> int | None:
    memory = _Memory()
    if lib.call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory)) != NVML_SUCCESS:
        return None
    return int(memory.total)


def _migs(lib: _Library, handle: ctypes.c_void_p) -> tuple[RawMig, ...]:
    """The MIG instances carved out of a GPU (empty slots are skipped)."""
    slots = ctypes.c_uint()
    if lib.call("nvmlDeviceGetMaxMigDeviceCount", handle, ctypes.byref(slots)) != NVML_SUCCESS:
        return ()
    found = []
    for slot in range(slots.value):
        mig = ctypes.c_void_p()
        call = "nvmlDeviceGetMigDeviceHandleByIndex"
        if lib.call(call, handle, ctypes.c_uint(slot), ctypes.byref(mig)) != NVML_SUCCESS:
            continue
        found.append(
            RawMig(
                name=lib.text("nvmlDeviceGetName", mig),
                uuid=lib.text("nvmlDeviceGetUUID", mig),
                memory_total=_memory(lib, mig),
            )
        )
    return tuple(found)


def query_libcuda(candidates: Sequence[str]) -> tuple[int | None, str] | None:
    """`cuDriverGetVersion` (13000 = CUDA 13.0); no `cuInit`, so no context. None: no libcuda."""
    loaded = _load(candidates)
    if loaded is None:
        return None
    version = ctypes.c_int()
    code = _Library(loaded[0]).call("cuDriverGetVersion", ctypes.byref(version))
    return (version.value if code == 0 else None), loaded[1]


def cuda_from_int(value: int | None) -> str | None:
    """13000 -> "13.0", 12040 -> "12.4" (the encoding of cuDriverGetVersion and NVML)."""
    if value is None or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _decode(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    return text or None


def _mib(total: int | None) -> int | None:
    return None if total is None else total // (1024 * 1024)


def interpret(report: NvmlReport) -> tuple[str | None, str | None, tuple[Gpu, ...], Problem | None]:
    """(driver, max CUDA, GPUs, problem) from raw NVML answers."""
    if report.init_error is not None:
        return None, None, (), _init_problem(*report.init_error)
    gpus = []
    for index, device in enumerate(report.devices):
        capability = None if device.capability is None else "{}.{}".format(*device.capability)
        migs = tuple(
            MigDevice(
                index=slot,
                name=_decode(mig.name),
                uuid=_decode(mig.uuid),
                memory_mib=_mib(mig.memory_total),
            )
            for slot, mig in enumerate(device.mig)
        )
        gpus.append(
            Gpu(
                index=index,
                name=_decode(device.name),
                memory_mib=_mib(device.memory_total),
                compute_capability=capability,
                uuid=_decode(device.uuid),
                bus_id=_decode(device.bus_id),
                mig_enabled=None if device.mig_mode is None else device.mig_mode == 1,
                mig_devices=migs,
            )
        )
    problem = None
    if not report.devices:
        problem = Problem(
            "no_devices",
            f"NVML ({report.library}) answered but found no GPU",
            hint="check that the GPU is passed through to this machine or container",
        )
    return _decode(report.driver), cuda_from_int(report.cuda), tuple(gpus), problem


def _init_problem(code: int, message: str) -> Problem | None:
    """Classify an `nvmlInit` failure; unknown codes return None (the caller warns)."""
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return Problem(
            "no_driver",
            f"NVML: {message}: the NVIDIA kernel driver is not loaded",
            hint="install the NVIDIA driver or load it (`sudo modprobe nvidia`), then retry",
        )
    if code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return Problem(
            "version_mismatch",
            f"NVML: {message}: the driver library and the loaded kernel module differ",
            hint="the driver was upgraded without a reboot (or the container's driver libraries "
            "do not match the host): reboot, or reload the nvidia kernel modules",
        )
    if code == NVML_ERROR_NO_PERMISSION:
        return Problem(
            "permission_denied",
            f"NVML: {message}",
            hint="this user cannot open /dev/nvidia*; add it to the group that owns them",
        )
    return None
