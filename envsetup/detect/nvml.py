"""NVML and libcuda: the driver's own answers, from a child process, in milliseconds.

NVML gives the driver version, the newest CUDA it supports and every GPU (name, memory, compute
capability, UUID, bus id, MIG) without creating a CUDA context, and `cuDriverGetVersion` needs
no `cuInit` either. The ctypes calls run in a child (`nvml_query.py`, stdlib only, no `site`):
a driver library that segfaults, aborts or hangs in `nvmlInit` takes down only that child,
which is stopped at the same timeout as `nvidia-smi` and becomes a `Problem` here.

The child only collects raw values; `query_nvml` turns its lines into an `NvmlReport` and
`interpret` turns that into facts. That split is the seam tests use: the calls run for real
against whatever library is present (a compiled fake in tests), and the interpretation is
tested on raw values.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from envsetup.model.machine import Gpu, MigDevice, Problem, driver_version

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from envsetup.model.machine import ProblemKind

NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

#: Far above any real machine (NVML's own tools go to 16-20 GPUs per node); a bogus count
#: such as 0xFFFFFFFF must not become four billion queries. The child reads no more.
MAX_DEVICES = 64

_LINUX_DIRS = ("usr/lib64", "usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu")
#: Imported rather than run as a script, so the child reuses the module's cached bytecode
#: (~1.5 ms); the folder goes last on sys.path, after the standard library.
_CHILD = (
    f"import sys; sys.path.append({str(Path(__file__).parent)!r}); "
    "import nvml_query; sys.exit(nvml_query.main(sys.argv[1:]))"
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
    count: int = 0  # the device count NVML reported; only the first MAX_DEVICES are read


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


def could_load(candidates: Sequence[str]) -> bool:
    """Whether any candidate may load: a bare name goes through the loader's search, a path
    must exist. Spares the child process where no library can be there (a fake root)."""
    return any(Path(name).name == name or Path(name).exists() for name in candidates)


def _run(what: str, candidates: Sequence[str], timeout: float) -> list[list[str]] | Problem:
    """The child's answer lines, split into tokens; a Problem when it crashed or hung."""
    from envsetup.detect.tool import run_tool

    label = "NVML" if what == "nvml" else "libcuda"
    argv = [sys.executable, "-I", "-S", "-c", _CHILD, what, str(MAX_DEVICES), *candidates]
    result = run_tool(argv, timeout=timeout, name=label)
    if result.problem is not None:
        return Problem(result.problem.kind, result.problem.message, _HINTS[result.problem.kind])
    lines = [line.split() for line in result.stdout.splitlines()]
    loaded = [line[1] for line in lines if line[:1] == ["library"] and len(line) == 2]
    if loaded:
        label += f" ({_text(loaded[0])})"
    if result.returncode == 0 and lines[-1:] == [["end"]]:
        return lines
    code = result.returncode
    if code is not None and code < 0:
        import signal

        try:
            how = f"crashed with {signal.Signals(-code).name}"
        except ValueError:
            how = f"crashed with signal {-code}"
    else:
        how = f"ended with exit code {code} before answering"
    last = (result.stderr.strip().splitlines() or [""])[-1][:200]
    shown = f": {last}" if last and last.isprintable() else ""
    kind: ProblemKind = "nvml_crashed" if what == "nvml" else "libcuda_crashed"
    return Problem(kind, f"{label} {how} while being queried{shown}", _HINTS["crashed"])


_HINTS = {
    "crashed": "the driver's user-space library is broken or does not match the kernel module: "
    "reinstall the NVIDIA driver (or fix the container's driver mounts); envsetup carried on "
    "without it, from the kernel module's files and nvidia-smi",
    "timeout": "a hung NVML usually means a wedged driver or GPU; check `dmesg` for Xid errors, "
    "or raise --timeout",
    "unparseable": "the driver library printed without end; reinstall the NVIDIA driver",
    "not_found": "this Python cannot start a copy of itself (sys.executable) to query NVML",
}


def _text(token: str) -> str:
    try:
        raw = _value(token)
    except ValueError:
        return "?"
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _value(token: str) -> bytes | int | None:
    """One token of the child's protocol: `-`, an integer, or `x` + hex bytes."""
    if token == "-":
        return None
    if token.startswith("x"):
        return bytes.fromhex(token[1:])
    return int(token)


def _bytes(token: str) -> bytes | None:
    value = _value(token)
    return value if isinstance(value, bytes) else None


def _int(token: str) -> int | None:
    value = _value(token)
    return value if isinstance(value, int) else None


def query_nvml(candidates: Sequence[str], *, timeout: float) -> NvmlReport | Problem | None:
    """One NVML session in a child process; None when no NVML library can be loaded."""
    lines = _run("nvml", candidates, timeout)
    if isinstance(lines, Problem):
        return lines
    try:
        return _report(lines)
    except (ValueError, IndexError):
        return Problem(
            "unparseable",
            "NVML's answers could not be read (envsetup's own child process printed them)",
            hint="report this with the output of `envsetup detect --json`",
        )


def _report(lines: list[list[str]]) -> NvmlReport | None:
    library, driver, cuda, count = None, None, None, 0
    devices: list[RawDevice] = []
    migs: list[RawMig] = []
    for key, *tokens in lines:
        if key == "library":
            library = _text(tokens[0])
        elif key == "init":
            code = int(tokens[0])
            message = _text(tokens[1]) or f"error {code}"
            return NvmlReport(library or "", init_error=(code, message))
        elif key == "system":
            driver, cuda, count = _bytes(tokens[0]), _int(tokens[1]), int(tokens[2])
        elif key == "gpu":
            name, memory, major, minor, uuid, bus_id, mig_mode = tokens
            known = "-" not in (major, minor)
            devices.append(
                RawDevice(
                    name=_bytes(name),
                    memory_total=_int(memory),
                    capability=(int(major), int(minor)) if known else None,
                    uuid=_bytes(uuid),
                    bus_id=_bytes(bus_id),
                    mig_mode=_int(mig_mode),
                )
            )
            migs = []
        elif key == "mig":
            migs.append(RawMig(_bytes(tokens[0]), _bytes(tokens[1]), _int(tokens[2])))
            devices[-1] = replace(devices[-1], mig=tuple(migs))
    if library is None:
        return None
    if count > MAX_DEVICES:  # a bogus count: the slots past the real GPUs answer nothing
        while devices and devices[-1] == RawDevice():
            devices.pop()
    return NvmlReport(library, driver=driver, cuda=cuda, devices=tuple(devices), count=count)


def query_libcuda(
    candidates: Sequence[str], *, timeout: float
) -> tuple[int | None, str] | Problem | None:
    """`cuDriverGetVersion` in a child process (13000 = CUDA 13.0). None: no libcuda."""
    lines = _run("cuda", candidates, timeout)
    if isinstance(lines, Problem):
        return lines
    answers = {line[0]: line[1:] for line in lines if line}
    if "library" not in answers or not answers.get("cuda"):
        return None
    try:
        return _int(answers["cuda"][0]), _text(answers["library"][0])
    except ValueError:
        return None, _text(answers["library"][0])


def cuda_from_int(value: int | None) -> str | None:
    """13000 -> "13.0", 12040 -> "12.4" (the encoding of cuDriverGetVersion and NVML)."""
    if value is None or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _decode(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
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
    driver = driver_version(_decode(report.driver))
    return driver, cuda_from_int(report.cuda), tuple(gpus), problem


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
