"""The ctypes half of NVML/libcuda detection, run in a child process (`python -I -S`, see nvml.py).

A driver library can segfault, abort or never return from `nvmlInit` (a wedged GPU); loaded
in envsetup's own process that kills or hangs `detect`, `plan` and every pytest header. Here
it can only take this child down, which the parent (`nvml.query`) stops at its timeout and
reports. So this file imports nothing but the standard library's always-built modules (it
runs without `site`, in milliseconds) and prints raw answers as lines of tokens:

    library <path>                  the candidate that loaded (absent: none could be loaded),
                                    written before any call so that a crash can name it
    init <code> <message>           nvmlInit failed; nothing else follows
    system <driver> <cuda> <count>  count as NVML reported it; at most <most> GPUs are read
    gpu <name> <memory> <major> <minor> <uuid> <bus id> <mig mode>
    mig <name> <uuid> <memory>      a MIG instance of the gpu line above
    cuda <version>                  libcuda's cuDriverGetVersion
    end

Each token is `-` (no answer), a decimal integer, or `x` and the bytes in hex, so names with
spaces, escapes or invalid UTF-8 travel unchanged and are judged by the parent.
"""

from __future__ import annotations

import ctypes
import os
import sys

NVML_SUCCESS = 0

#: More than any GPU's MIG slots (7 on A100/H100).
MAX_MIG_SLOTS = 16

_TEXT_SIZE = 96  # >= NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE (80), NVML_DEVICE_UUID_V2 (96)


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


def _token(value: bytes | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bytes):
        return "x" + value.hex()
    return str(value)


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

    def error_string(self, code: int) -> bytes:
        function = getattr(self.lib, "nvmlErrorString", None)
        if function is None:
            return b""
        function.restype = ctypes.c_char_p
        message = function(code)
        return message if isinstance(message, bytes) else b""


def _load(candidates: list[str]) -> tuple[_Library, str] | None:
    for candidate in candidates:
        try:
            return _Library(ctypes.CDLL(candidate)), candidate
        except OSError:
            continue
    return None


def _nvml(lib: _Library, most: int, say: list[str]) -> None:
    """One NVML session. No `nvmlShutdown`: this process exits next, which releases NVML
    and saves the ~10 ms shutdown takes on an H100."""
    code = lib.call(("nvmlInit_v2", "nvmlInit"))
    if code != NVML_SUCCESS:
        say.append(f"init {code} {_token(lib.error_string(code))}")
        return
    cuda = ctypes.c_int()
    cuda_call = ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion")
    has_cuda = lib.call(cuda_call, ctypes.byref(cuda)) == NVML_SUCCESS
    count = ctypes.c_uint()
    if lib.call(("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"), ctypes.byref(count)):
        count.value = 0
    driver = lib.text("nvmlSystemGetDriverVersion")
    say.append(f"system {_token(driver)} {_token(cuda.value if has_cuda else None)} {count.value}")
    for index in range(min(count.value, most)):
        _device(lib, index, say)


def _device(lib: _Library, index: int, say: list[str]) -> None:
    handle = ctypes.c_void_p()
    by_index = ("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
    if lib.call(by_index, ctypes.c_uint(index), ctypes.byref(handle)) != NVML_SUCCESS:
        say.append("gpu - - - - - - -")
        return
    major, minor = ctypes.c_int(), ctypes.c_int()
    call = "nvmlDeviceGetCudaComputeCapability"
    capability: tuple[int | None, int | None] = (None, None)
    if lib.call(call, handle, ctypes.byref(major), ctypes.byref(minor)) == NVML_SUCCESS:
        capability = (major.value, minor.value)
    pci = _PciInfo()
    pci_call = ("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2")
    bus_id = pci.busId if lib.call(pci_call, handle, ctypes.byref(pci)) == NVML_SUCCESS else None
    current, pending = ctypes.c_uint(), ctypes.c_uint()
    mig_mode = None
    if lib.call("nvmlDeviceGetMigMode", handle, ctypes.byref(current), ctypes.byref(pending)) == 0:
        mig_mode = current.value
    fields = (
        lib.text("nvmlDeviceGetName", handle),
        _memory(lib, handle),
        *capability,
        lib.text("nvmlDeviceGetUUID", handle),
        bus_id,
        mig_mode,
    )
    say.append("gpu " + " ".join(_token(field) for field in fields))
    if mig_mode == 1:
        _migs(lib, handle, say)


def _memory(lib: _Library, handle: ctypes.c_void_p) -> int | None:
    memory = _Memory()
    if lib.call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory)) != NVML_SUCCESS:
        return None
    return int(memory.total)


def _migs(lib: _Library, handle: ctypes.c_void_p, say: list[str]) -> None:
    """The MIG instances carved out of a GPU (empty slots are skipped)."""
    slots = ctypes.c_uint()
    if lib.call("nvmlDeviceGetMaxMigDeviceCount", handle, ctypes.byref(slots)) != NVML_SUCCESS:
        return
    for slot in range(min(slots.value, MAX_MIG_SLOTS)):
        mig = ctypes.c_void_p()
        call = "nvmlDeviceGetMigDeviceHandleByIndex"
        if lib.call(call, handle, ctypes.c_uint(slot), ctypes.byref(mig)) != NVML_SUCCESS:
            continue
        name, uuid = lib.text("nvmlDeviceGetName", mig), lib.text("nvmlDeviceGetUUID", mig)
        say.append(f"mig {_token(name)} {_token(uuid)} {_token(_memory(lib, mig))}")


def _libcuda(lib: _Library, say: list[str]) -> None:
    """`cuDriverGetVersion` (13000 = CUDA 13.0); no `cuInit`, so no context."""
    version = ctypes.c_int()
    code = lib.call("cuDriverGetVersion", ctypes.byref(version))
    say.append(f"cuda {_token(version.value if code == 0 else None)}")


def main(argv: list[str]) -> int:
    """argv: `nvml` or `cuda`, the most GPUs to read (a bogus count must not loop for hours),
    then the library candidates in order."""
    # What the library itself prints must not mix with the answers: they go to a copy of
    # stdout, and stdout (fd 1) is pointed at stderr before anything is loaded.
    out = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)
    what, most, candidates = argv[0], int(argv[1]), argv[2:]
    say: list[str] = []
    loaded = _load(candidates)
    if loaded is not None:
        lib, name = loaded
        out.write(f"library {_token(os.fsencode(name))}\n")
        out.flush()  # so that a crash in the calls below can still name the library
        if what == "nvml":
            _nvml(lib, most, say)
        else:
            _libcuda(lib, say)
    say.append("end")
    out.write("\n".join(say) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
