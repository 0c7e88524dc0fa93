"""What torch can use in this process, and whether a `gpu` test's conditions hold.

Plain functions so the pytest plugin stays a thin layer of hooks and this logic is testable
without pytest. Only `probe_torch` imports torch, and the plugin calls it only when a `gpu` test
or the `device` fixture runs: a plugin module loaded on every pytest run must not pay the
seconds `import torch` costs. Without torch installed, `unmet_on_machine` judges a `gpu` test
from detection alone (a cuDF or CuPy test needs a GPU, not torch).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envsetup import settings
from envsetup.model.capability import ComputeCapability
from envsetup.model.machine import Gpu, Machine
from envsetup.model.variants import KIND_LABELS, version_tuple
from envsetup.model.visibility import cuda_visible, parse_entries, visible
from envsetup.terminal import printable

#: Backends a `gpu(backend=...)` marker may ask for. ROCm builds of torch use the "cuda" device.
BACKENDS = ("cuda", "rocm", "mps")

MARKER_ARGS = ("count", "min_memory", "min_capability", "min_cuda", "backend")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
#: A PyPI torch wheel's CUDA dependency: "nvidia-cuda-runtime-cu12==12.4.127; ..." up to 2.10,
#: "cuda-toolkit[cublas,cudart,...]==13.0.2; ..." from 2.11 (seen on the H100 machine).
_CUDA_RUNTIME = re.compile(
    r"(?:nvidia-cuda-runtime(?:-cu\d+)?|cuda-toolkit\[[^\]]*\bcudart\b[^\]]*\])"
    r"\s*\(?\s*==\s*(\d+)\.(\d+)"
)
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TorchDevice:
    """One GPU as torch reports it (indices are torch's, i.e. after *_VISIBLE_DEVICES)."""

    index: int
    name: str
    memory_bytes: int
    capability: ComputeCapability


@dataclass(frozen=True)
class TorchView:
    """What the installed torch can use here; `problem` says why importing it failed."""

    version: str | None
    cuda: str | None = None
    hip: str | None = None
    devices: tuple[TorchDevice, ...] = ()
    arch_list: tuple[str, ...] = ()
    mps: bool = False
    problem: str | None = None

    @property
    def backend(self) -> str | None:
        """The accelerator torch can use: "cuda", "rocm", "mps", or None."""
        if self.devices:
            return "rocm" if self.hip else "cuda"
        return "mps" if self.mps else None

    @property
    def build(self) -> str:
        if self.cuda:
            return f"{KIND_LABELS['cuda']} {self.cuda} build"
        if self.hip:
            return f"{KIND_LABELS['rocm']} {self.hip} build"
        return f"{KIND_LABELS['cpu']} build"


@dataclass(frozen=True)
class GpuRequirement:
    """The conditions of one `@pytest.mark.gpu(...)`, validated."""

    count: int = 1
    min_memory: int | None = None  # bytes
    min_capability: ComputeCapability | None = None
    min_cuda: tuple[int, int] | None = None
    backend: str | None = None


class DeviceUnavailable(Exception):
    """A device was asked for (by option, marker or parameter) that torch cannot use here."""


def torch_installed() -> bool:
    """Whether an importable `torch` exists, found without importing it."""
    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


@contextlib.contextmanager
def nvml_cuda_check() -> Iterator[None]:
    """torch's NVML-based availability check for the calls inside only: it creates no CUDA
    context, so forks stay safe, and the tests never see the variable (torch reads it per call)."""
    name = "PYTORCH_NVML_BASED_CUDA_CHECK"
    before = os.environ.get(name)
    if before is None:
        os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)


def probe_torch() -> TorchView:
    """Import torch and ask it what it can use; never raises (a broken torch is a finding)."""
    with nvml_cuda_check():
        try:
            import torch
        except Exception as exc:  # a missing or broken install is what we report, not a crash
            return TorchView(version=None, problem=f"import torch failed: {exc}")
        version = str(getattr(torch, "__version__", "unknown"))
        try:
            return _ask_torch(torch, version)
        except Exception as exc:  # a torch that imports but breaks when asked is a finding too
            return TorchView(version=version, problem=f"torch {version} failed when asked: {exc}")


def _ask_torch(torch: Any, version: str) -> TorchView:
    cuda, hip = torch.version.cuda, getattr(torch.version, "hip", None)
    devices: list[TorchDevice] = []
    arch_list: tuple[str, ...] = ()
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            capability = ComputeCapability(int(props.major), int(props.minor))
            devices.append(TorchDevice(index, props.name, int(props.total_memory), capability))
        arch_list = tuple(torch.cuda.get_arch_list())
    # torch.backends.mps exists from 1.12 on; older or stripped builds simply have no MPS.
    mps_module = getattr(getattr(torch, "backends", None), "mps", None)
    mps = bool(mps_module is not None and mps_module.is_available())
    return TorchView(version, cuda, hip, tuple(devices), arch_list, mps)


def parse_memory(value: object) -> int:
    """Bytes from 20 * 2**30, "20GiB", "20 GB" or "512MiB" (GB = 10**9, GiB = 2**30)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"min_memory={value!r} is not a size; expected e.g. '20GiB' or '16GB'")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError(f"min_memory={value!r} must be more than zero")
    return size


def _parse_pair(name: str, value: object) -> tuple[int, int]:
    """(8, 0) from "8.0", 8.0, "8" or (8, 0)."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    if isinstance(value, (str, float, int)) and not isinstance(value, bool):
        match = re.fullmatch(r"(\d+)(?:\.(\d+))?", str(value).strip())
        if match:
            return (int(match.group(1)), int(match.group(2) or 0))
    raise ValueError(f"{name}={value!r} is not a version; expected e.g. '8.0'")


def requirement_from_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> GpuRequirement:
    """Validate `gpu(...)` arguments; `gpu(2)` is short for `gpu(count=2)`."""
    if len(args) > 1 or (args and "count" in kwargs):
        raise ValueError("takes at most one positional argument, the GPU count")
    unknown = sorted(set(kwargs) - set(MARKER_ARGS))
    if unknown:
        raise ValueError(f"unknown argument {unknown[0]!r}; expected {', '.join(MARKER_ARGS)}")
    count = args[0] if args else kwargs.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count={count!r} must be a positive integer")
    backend = kwargs.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; expected one of {', '.join(BACKENDS)}")
    memory, capability, cuda = (kwargs.get(k) for k in ("min_memory", "min_capability", "min_cuda"))
    return GpuRequirement(
        count=count,
        min_memory=None if memory is None else parse_memory(memory),
        min_capability=None
        if capability is None
        else ComputeCapability(*_parse_pair("min_capability", capability)),
        min_cuda=None if cuda is None else _parse_pair("min_cuda", cuda),
        backend=backend,
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB".replace(".0 GiB", " GiB")


def _dotted(pair: tuple[int, int]) -> str:
    return f"{pair[0]}.{pair[1]}"


def unmet(requirement: GpuRequirement, view: TorchView) -> list[str]:
    """Only the conditions that do not hold, each in words ("needs 2 GPUs, 1 visible")."""
    backend = view.backend
    if requirement.backend and requirement.backend != backend:
        wanted = KIND_LABELS[requirement.backend]
        have = KIND_LABELS.get(backend or "", "none")
        return [f"needs a {wanted} device, torch can use {have}"]
    missing: list[str] = []
    if backend == "mps":
        if requirement.count > 1:
            missing.append(f"needs {requirement.count} GPUs, MPS is one device")
        asked = [
            name
            for name in ("min_memory", "min_capability", "min_cuda")
            if getattr(requirement, name)
        ]
        missing += [f"{name} applies to CUDA/ROCm GPUs, torch uses MPS" for name in asked]
        return missing
    devices = view.devices
    if len(devices) < requirement.count:
        plural = "GPU" if requirement.count == 1 else "GPUs"
        missing.append(f"needs {requirement.count} {plural}, {len(devices)} visible")
    used = devices[: requirement.count]
    if requirement.min_memory is not None:
        small = [d for d in used if d.memory_bytes < requirement.min_memory]
        missing += [
            f"needs {_gib(requirement.min_memory)} GPU memory, cuda:{d.index} ({d.name}) has "
            f"{_gib(d.memory_bytes)}"
            for d in small
        ]
    if requirement.min_capability is not None and backend == "cuda":
        old = [d for d in used if d.capability < requirement.min_capability]
        missing += [
            f"needs compute capability {requirement.min_capability}, cuda:{d.index} "
            f"({d.name}) is {d.capability}"
            for d in old
        ]
    if requirement.min_cuda is not None:
        built = _parse_pair("torch.version.cuda", view.cuda) if view.cuda else None
        if built is None or built < requirement.min_cuda:
            have = f"torch {view.version} is a {view.build}"
            missing.append(f"needs CUDA {_dotted(requirement.min_cuda)}, {have}")
    if backend == "cuda" and view.arch_list:
        for d in used:
            if not _covers(view.arch_list, d.capability):
                missing.append(
                    f"torch {view.version} has no kernels for {d.capability.arch}"
                    f" ({d.name}); its wheels hold {', '.join(view.arch_list)}"
                )
    return missing


def unmet_on_machine(requirement: GpuRequirement, machine: Machine) -> list[str]:
    """`unmet` judged from detection (no torch here): the visible GPUs of the asked backend,
    their memory and compute capability, and the newest CUDA the driver supports."""
    from envsetup.resolve.rules import visible_gpus

    if requirement.backend == "mps" or (machine.mps and not machine.gpus):
        if not machine.mps:
            return ["needs an MPS device, none detected"]
        return unmet(requirement, TorchView(version=None, mps=True))
    vendor = {"cuda": "nvidia", "rocm": "amd"}.get(requirement.backend or "")
    gpus = [gpu for gpu in visible_gpus(machine)[0] if vendor in (None, gpu.vendor)]
    missing: list[str] = []
    if len(gpus) < requirement.count:
        kind = f"{KIND_LABELS[requirement.backend]} " if requirement.backend else ""
        plural = "GPU" if requirement.count == 1 else "GPUs"
        missing.append(f"needs {requirement.count} {kind}{plural}, {len(gpus)} detected")
    used = gpus[: requirement.count]
    if requirement.min_memory is not None:
        missing += [
            f"needs {_gib(requirement.min_memory)} GPU memory, GPU {g.index} ({g.name}) has "
            f"{_gib(g.memory_mib * 2**20)}"
            for g in used
            if g.memory_mib is not None and g.memory_mib * 2**20 < requirement.min_memory
        ]
    if requirement.min_capability is not None:
        missing += [
            f"needs compute capability {requirement.min_capability}, GPU {g.index} "
            f"({g.name}) is {g.compute_capability}"
            for g in used
            if g.compute_capability
            and ComputeCapability.parse(g.compute_capability) < requirement.min_capability
        ]
    if requirement.min_cuda is not None and gpus and vendor != "amd":
        driver = _parse_pair("cuda", machine.cuda_version) if machine.cuda_version else None
        if driver is None or driver < requirement.min_cuda:
            have = f"up to {machine.cuda_version}" if machine.cuda_version else "an unknown CUDA"
            needs = f"needs CUDA {_dotted(requirement.min_cuda)}"
            missing.append(f"{needs}, the driver supports {have}")
    return missing


def _covers(arch_list: tuple[str, ...], capability: ComputeCapability) -> bool:
    """Read torch's own arch list ("sm_90", "compute_90") with the matrices' coverage rule."""
    from envsetup.matrices.schema import ArchList

    return ArchList.from_torch(arch_list).covers(str(capability))


def accelerator_device(view: TorchView) -> str | None:
    """The device an accelerated test gets: the first GPU ("cuda:0", the worker's own under
    xdist), else MPS."""
    if view.devices:
        return "cuda:0"
    return "mps" if view.mps else None


def check_device(name: str, view: TorchView) -> str:
    """`name` made concrete ("cuda" -> "cuda:0") if torch can use it, else DeviceUnavailable."""
    if name == "cpu":
        return name
    if name == "mps":
        if not view.mps:
            raise DeviceUnavailable("mps was asked for, but torch cannot use MPS here")
        return name
    index = int(name.partition(":")[2] or 0)
    if index >= len(view.devices):
        seen = len(view.devices)
        raise DeviceUnavailable(f"{name} was asked for, but torch sees {seen} CUDA device(s)")
    return f"cuda:{index}"


def devices_from_machine(machine: Machine) -> tuple[str, ...]:
    """The devices `--device all` runs over, decided from probes only (no torch), so every
    xdist worker collects the same tests: cpu, one cuda:N per visible GPU, mps on Apple."""
    from envsetup.resolve.rules import visible_gpus

    count = len(visible_gpus(machine)[0])
    return ("cpu", *(f"cuda:{i}" for i in range(count)), *(("mps",) if machine.mps else ()))


def worker_gpus(machine: Machine, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The variable that pins a process to GPUs and the entries one xdist worker may get.

    An outer CUDA_VISIBLE_DEVICES (or HIP_VISIBLE_DEVICES on AMD) list is read by CUDA's rule
    (envsetup.model.visibility): the entries it honours, as written — indices, GPU-UUIDs, MIG-UUIDs
    —
    so a worker never lands on a GPU the caller excluded or one the runtime ignores. Without
    one, each MIG instance counts as a device (CUDA uses one MIG instance per process).
    """
    amd = bool(machine.amd_gpus and not machine.nvidia_gpus)
    variable = "HIP_VISIBLE_DEVICES" if amd else "CUDA_VISIBLE_DEVICES"
    outer = settings.get(variable, environ)
    if outer is not None:
        gpus = machine.amd_gpus if amd else machine.nvidia_gpus
        return variable, cuda_visible(parse_entries(outer), gpus).entries
    return variable, tuple(entry for gpu in machine.gpus for entry in _gpu_entries(gpu))


def _gpu_entries(gpu: Gpu) -> tuple[str, ...]:
    migs = tuple(mig.uuid for mig in gpu.mig_devices if mig.uuid)
    return migs if gpu.mig_enabled and migs else (str(gpu.index),)


def torch_dist_build(version: str | None, requires: Sequence[str] = ()) -> str:
    """Describe an installed torch from its metadata alone (no import): the local version tag
    ("+cu130"), else the CUDA runtime a PyPI wheel depends on."""
    if version is None:
        return "not installed"
    local = version.partition("+")[2]
    if local:
        from envsetup.model.variants import parse_variant

        try:
            variant = parse_variant(local)
        except ValueError:
            return f"{local} build"
        numbers = ".".join(map(str, variant.version))
        return " ".join(filter(None, (KIND_LABELS[variant.kind], numbers, "build")))
    for line in requires:
        runtime = _CUDA_RUNTIME.match(line)
        if runtime:
            return f"CUDA {runtime[1]}.{runtime[2]} build from PyPI"
    return "PyPI build"


def cpu_only(build: str) -> bool:
    """Whether a `torch_dist_build` description rules every accelerator out (a CPU-only build,
    or no torch at all), read from metadata without importing torch."""
    return build.startswith((KIND_LABELS["cpu"], torch_dist_build(None)))


def expected_device(machine: Machine, build: str) -> str:
    """The device `auto` should pick, guessed without importing torch (for the header)."""
    if cpu_only(build):
        return "cpu"
    if machine.gpus:
        return "cuda:0"
    return "mps" if machine.mps else "cpu"


def describe_gpus(machine: Machine) -> str:
    """ "NVIDIA H100 80GB HBM3" or "2x NVIDIA A100-SXM4-80GB, Tesla T4"."""
    names: dict[str, int] = {}
    for gpu in machine.gpus:
        label = printable(gpu.name) if gpu.name else f"{gpu.vendor} GPU {gpu.index}"
        names[label] = names.get(label, 0) + 1
    return ", ".join(name if n == 1 else f"{n}x {name}" for name, n in names.items())


def driver_summary(machine: Machine) -> str:
    """ "driver 580.159.04, CUDA ≤ 13.0" with whatever is known."""
    parts = []
    if machine.driver_version:
        parts.append(f"driver {machine.driver_version}")
    if machine.cuda_version:
        parts.append(f"CUDA ≤ {machine.cuda_version}")
    return ", ".join(parts)


def why_unusable(view: TorchView, machine: Machine, fix: Callable[[], str | None]) -> str:
    """Why torch uses no accelerator on this machine, and what to do about it; `fix` (the
    planner's install command) is asked for only when installing another build is the cure."""
    torch_name = f"torch {view.version}" if view.version else "torch"
    install = True
    if not machine.gpus:
        seen = view.problem or f"{torch_name} ({view.build}) sees none"
        return f"no usable GPU: none was detected ({seen})"
    if view.problem:
        cause = view.problem
    elif view.cuda is None and view.hip is None:
        cause = f"{torch_name} is a CPU-only build"
    elif visible(machine).hides_all:
        cause = f"CUDA_VISIBLE_DEVICES hides every GPU from {torch_name}"
        cause += " — fix: unset it or list a GPU in it"
        install = False
    elif (
        view.cuda
        and machine.cuda_version
        and version_tuple(view.cuda)[:2] > version_tuple(machine.cuda_version)[:2]
    ):
        cause = f"{torch_name} is built for CUDA {view.cuda}, newer than the driver supports"
    elif view.hip and not machine.amd_gpus:
        cause = f"{torch_name} is a ROCm build, these GPUs need a CUDA build"
    elif view.cuda and not machine.nvidia_gpus:
        cause = f"{torch_name} is a CUDA build, these GPUs need a ROCm build"
    else:
        cause = f"{torch_name} ({view.build}) cannot use it"
        install = False
    where = driver_summary(machine)
    present = f"{describe_gpus(machine)} present" + (f" ({where})" if where else "")
    command = fix() if install else None
    return f"{present}, but {cause}" + (f" — fix: {command}" if command else "")


def fix_command(machine: Machine, installed: str | None) -> str | None:
    """The install command the planner gives for this machine, keeping the installed torch
    release when a build of it fits, else the newest that does; None when nothing fits."""
    from envsetup.install.argv import suggested_install

    return suggested_install(machine, sys.executable, {"torch": installed} if installed else {})
