"""The `Machine` value: what the probes found about this (or a described) machine, with evidence.

Probes and parsers produce these values; the resolver, the pytest plugin and `verify` read them.
Everything here is plain data so that it can be built from flags, from a saved `nvidia-smi` paste
or from live probes, and compared in tests.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any, Literal

    #: Who made a GPU (Intel XPUs are `Machine.xpu`, not GPUs here).
    Vendor = Literal["nvidia", "amd"]
    #: What went wrong in a probe or parser; the same names as PROBLEM_KINDS.
    ProblemKind = Literal[
        "no_driver",
        "version_mismatch",
        "no_devices",
        "not_found",
        "timeout",
        "permission_denied",
        "unparseable",
        "nvml_crashed",
        "libcuda_crashed",
    ]

#: Version of the `detect --json` document; a fleet description is a set of these documents,
#: so a reader can refuse one written by a newer envsetup instead of misreading it.
SCHEMA_VERSION = 1

#: Problem kinds reported by parsers and probes (`detect --json` -> "errors"[].kind).
PROBLEM_KINDS: tuple[ProblemKind, ...] = (
    "no_driver",
    "version_mismatch",
    "no_devices",
    "not_found",
    "timeout",
    "permission_denied",
    "unparseable",
    "nvml_crashed",
    "libcuda_crashed",
)


#: An NVIDIA driver version: "580.159.04", "560.94", "550". ASCII digits only: `\d` also
#: matches Arabic-Indic or full-width digits, which `packaging` reads as 550 and others not.
_DRIVER_VERSION = re.compile(r"[0-9]{2,4}(?:\.[0-9]{1,3}){0,2}")


def driver_version(text: str | None) -> str | None:
    """`text` without surrounding blanks if it is a driver version, else None: the one rule
    for every source (nvidia-smi, NVML, /sys, /proc, overrides, --driver). Anything else in
    it (a NUL, a Unicode digit, a letter) rejects the whole text, never a prefix of it."""
    value = (text or "").strip(" \t\r\n")
    return value if _DRIVER_VERSION.fullmatch(value) else None


@dataclass(frozen=True)
class Problem:
    """A classified failure: what happened, in words, and what to do about it."""

    kind: ProblemKind
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class MigDevice:
    """One MIG instance carved out of a GPU; it is not a GPU of its own."""

    index: int | None = None
    name: str | None = None
    uuid: str | None = None
    memory_mib: int | None = None
    gpu_instance: int | None = None
    compute_instance: int | None = None


@dataclass(frozen=True)
class Gpu:
    """One physical accelerator. `compute_capability` is "major.minor" for NVIDIA, `arch` the
    gfx target for AMD ("gfx90a"); either may be unknown (None)."""

    index: int
    name: str | None = None
    memory_mib: int | None = None
    compute_capability: str | None = None
    uuid: str | None = None
    bus_id: str | None = None
    mig_enabled: bool | None = None
    mig_devices: tuple[MigDevice, ...] = ()
    vendor: Vendor = "nvidia"
    arch: str | None = None

    def answers_to(self, entry: str) -> bool:
        """Whether a CUDA_VISIBLE_DEVICES entry names this GPU: its index, a prefix of its
        `GPU-` UUID (CUDA accepts prefixes), or the UUID of one of its MIG instances."""
        token = entry.strip()
        if token == str(self.index):
            return True
        if token.startswith("GPU-"):
            return bool(self.uuid and self.uuid.startswith(token))
        return any(mig.uuid == token for mig in self.mig_devices if mig.uuid)


@dataclass(frozen=True)
class Evidence:
    """Where one fact came from and how long it took to learn it."""

    fact: str
    value: str | int | float | bool | None  # JSON keeps the type: `false`, not "False"
    source: str
    ms: float


@dataclass(frozen=True)
class Platform:
    """OS, CPU architecture, C library and target Python of the machine."""

    os: str  # "linux" | "windows" | "macos"
    arch: str  # "x86_64" | "aarch64" | "amd64" | "arm64"
    python: str  # "3.11"; "3.13t" for a free-threaded interpreter
    libc: str | None = None  # "glibc 2.36", "musl 1.2", None off Linux
    wsl: bool = False

    @property
    def key(self) -> str:
        """The platform key used in `matrices/` ("linux-x86_64", "windows-amd64", ...)."""
        return f"{self.os}-{self.arch}"


@dataclass(frozen=True)
class Machine:
    """Everything the resolver needs to know about a machine, and why we believe it."""

    platform: Platform
    driver_version: str | None = None
    cuda_version: str | None = None  # the newest CUDA the driver supports, "X.Y"
    gpus: tuple[Gpu, ...] = ()
    visible_gpus: tuple[str, ...] | None = None  # CUDA_VISIBLE_DEVICES entries; None = all
    device_nodes: bool | None = None  # /dev/nvidia* present (None off Linux or unknown)
    mps: bool = False
    xpu: bool = False
    backend_override: str | None = None  # a variant forced by ENVSETUP_BACKEND and friends
    evidence: tuple[Evidence, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[Problem, ...] = field(default=())
    hostname: str | None = None  # the node's name, so a fleet's plan can say which node forced it

    @property
    def nvidia_gpus(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "nvidia")

    @property
    def amd_gpus(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "amd")

    def to_json(self) -> dict[str, Any]:
        """The `detect --json` document (stable keys, see docs/cli.md)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "hostname": self.hostname,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "gpus": [
                {
                    "index": gpu.index,
                    "name": gpu.name,
                    "vendor": gpu.vendor,
                    "memory_mib": gpu.memory_mib,
                    "compute_capability": gpu.compute_capability,
                    "arch": gpu.arch,
                    "uuid": gpu.uuid,
                    "bus_id": gpu.bus_id,
                    "mig_enabled": gpu.mig_enabled,
                    "mig_devices": [asdict(mig) for mig in gpu.mig_devices],
                }
                for gpu in self.gpus
            ],
            "visible_gpus": None if self.visible_gpus is None else list(self.visible_gpus),
            "device_nodes": self.device_nodes,
            "mig": any(gpu.mig_enabled for gpu in self.gpus),
            "platform": {
                "os": self.platform.os,
                "arch": self.platform.arch,
                "key": self.platform.key,
                "python": self.platform.python,
                "libc": self.platform.libc,
                "wsl": self.platform.wsl,
            },
            "rocm": [gpu.arch for gpu in self.amd_gpus if gpu.arch],
            "mps": self.mps,
            "xpu": self.xpu,
            "backend_override": self.backend_override,
            "evidence": [asdict(item) for item in self.evidence],
            "warnings": list(self.warnings),
            "errors": [asdict(problem) for problem in self.errors],
        }
