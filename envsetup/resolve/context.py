"""What the rules need to know about the machine, computed once: visible GPUs, the backend
target, the driver's CUDA; machines no build can serve are refused here, before any search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from envsetup.errors import EnvsetupError, UsageError
from envsetup.model.machine import Gpu, Machine
from envsetup.model.plan import Request
from envsetup.model.variants import Variant, parse_variant
from envsetup.model.visibility import visible
from envsetup.resolve.rules import visible_gpus

if TYPE_CHECKING:
    from envsetup.matrices import Matrices


class NoCompatibleBuild(EnvsetupError):
    """No torch build satisfies the machine and the request; the hint lists what would."""


@dataclass
class _Context:
    """What the rules need to know about this machine, computed once."""

    machine: Machine
    request: Request
    matrices: Matrices
    platform: str
    os: str
    python: str
    gpus: tuple[Gpu, ...]
    target: str  # "cuda" | "rocm" | "xpu" | "cpu"
    forced: Variant | None  # an exact variant the user forced
    max_cuda: str | None
    driver: str | None
    base: str  # index URL base (PyTorch's or a mirror)
    links: str | None  # flat find-links base of a mirror
    #: companions the target environment has but the request did not name: kept paired when
    #: the chosen torch has a partner, never a reason to hold torch back
    installed: dict[str, str]
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def nvidia(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "nvidia")

    @property
    def amd(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "amd")


@dataclass(frozen=True)
class _Choice:
    """A variant that passed every rule for one release, with why it was picked."""

    variant: Variant
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    minor_compat: bool = False  # newer than the driver's CUDA: runs through minor-version compat
    #: the GPU-code facts this choice rests on that no primary source confirms (empty: all are)
    inferred: tuple[str, ...] = ()


def _context(
    machine: Machine,
    request: Request,
    matrices: Matrices,
    base: str,
    links: str | None,
    *,
    installed: dict[str, str],
) -> _Context:
    gpus, notes = visible_gpus(machine)
    backend = request.backend
    reasons: list[str] = []
    if backend == "auto" and machine.backend_override:
        backend = machine.backend_override
        from envsetup.detect.findings import source_of

        source = source_of(machine.evidence, "backend_override", backend) or "the environment"
        reasons.append(f"backend {backend} forced by {source}")
    elif backend != "auto":
        reasons.append(f"backend {backend} requested with --backend")
    forced: Variant | None = None
    os_name = machine.platform.os
    if backend in ("cuda", "rocm"):
        target = backend
    elif backend == "auto":
        target = _auto_target(machine, gpus, os_name, reasons)
    else:
        try:
            forced = parse_variant(backend)
        except ValueError as error:
            raise UsageError(f"--backend: {error}") from None
        target = forced.kind
    if os_name == "macos" and target != "cpu":
        raise NoCompatibleBuild(
            f"backend {backend} is not available on macOS: PyTorch publishes only PyPI wheels "
            "(CPU and Apple MPS) for macOS",
            hint="drop --backend, or plan for another machine with --platform",
        )
    if target == "rocm" and os_name != "linux":
        raise NoCompatibleBuild(
            f"ROCm builds exist only for Linux on download.pytorch.org, not {machine.platform.key}",
            hint="use --backend cpu, or plan for a Linux machine",
        )
    max_cuda, driver_reason = _driver_max_cuda(machine, matrices)
    if target == "cuda" and driver_reason:
        reasons.append(driver_reason)
    if target == "rocm":
        notes = (*notes, *_gfx_check(gpus, matrices, request.policy))
    return _Context(
        machine=machine,
        request=request,
        matrices=matrices,
        platform=machine.platform.key,
        os=os_name,
        python=machine.platform.python,
        gpus=gpus,
        target=target,
        forced=forced,
        max_cuda=max_cuda,
        driver=machine.driver_version,
        base=base,
        links=links,
        installed=installed,
        reasons=reasons,
        warnings=[
            *(f"detection: {problem.message}" for problem in machine.errors),
            *machine.warnings,
            *notes,
        ],
    )


def _auto_target(machine: Machine, gpus: tuple[Gpu, ...], os_name: str, reasons: list[str]) -> str:
    nvidia = [gpu for gpu in gpus if gpu.vendor == "nvidia"]
    amd = [gpu for gpu in gpus if gpu.vendor == "amd"]
    if os_name == "macos":
        reasons.append("macOS: the PyPI wheels are the only builds and include Apple MPS")
        return "cpu"
    if nvidia:
        return "cuda"
    if machine.driver_version and not machine.gpus and not visible(machine).hides_all:
        return "cuda"  # a driver but no GPU list (e.g. only /proc was readable)
    if amd:
        if os_name != "linux":
            reasons.append("AMD GPU on Windows: PyTorch publishes ROCm wheels only for Linux")
            return "cpu"
        return "rocm"
    if machine.xpu:
        return "xpu"
    if machine.gpus and not gpus:
        reasons.append("no GPU is visible (CUDA_VISIBLE_DEVICES hides them all): CPU build")
    elif any(problem.kind != "not_found" for problem in machine.errors):
        _refuse_unreadable(machine)
    else:
        reasons.append("no GPU found: CPU build")
    return "cpu"


def _gfx_check(gpus: tuple[Gpu, ...], matrices: Matrices, policy: str) -> list[str]:
    """A gfx target no ROCm build lists is refused up front; a ROCm plan with no gfx target
    known is unchecked, which the plan says (and `--policy strict` refuses)."""
    known = {target for row in matrices.rocm for target in row.gfx}
    given = sorted({gpu.arch for gpu in gpus if gpu.vendor == "amd" and gpu.arch})
    unlisted = [target for target in given if target not in known]
    if unlisted:
        raise NoCompatibleBuild(
            f"no ROCm build of torch lists {', '.join(unlisted)} among its gfx targets "
            f"(matrices/archs.toml knows {', '.join(sorted(known, key=_gfx_key))})",
            hint="check the target with `rocminfo | grep gfx`; an unlisted GPU can only run "
            "the CPU build (--backend cpu) or a torch built from source for it",
        )
    if given:
        return []
    message = (
        "no AMD GPU's gfx target is known, so the ROCm build's gfx targets were not checked "
        "against this machine: pass --amd-arch gfxNNNN (or UV_AMD_GPU_ARCHITECTURE=gfxNNNN; "
        "`rocminfo | grep gfx` prints it)"
    )
    if policy == "strict":
        raise NoCompatibleBuild(message, hint="--policy strict refuses unchecked GPU code")
    return [message]


def _gfx_key(target: str) -> tuple[int, str]:
    return len(target), target


def _refuse_unreadable(machine: Machine) -> NoReturn:
    """An NVIDIA stack that is there but cannot be read is not a CPU machine: planning the CPU
    build would install the silent failure envsetup exists to prevent, so the user decides."""
    problem = next(problem for problem in machine.errors if problem.kind != "not_found")
    raise EnvsetupError(
        f"an NVIDIA GPU or driver seems present but could not be read: {problem.message}",
        hint=(f"{problem.hint} " if problem.hint else "")
        + "Or say what to plan for: --driver VERSION (or ENVSETUP_CUDA_DRIVER_VERSION) for a "
        "CUDA build, --backend cpu for the CPU build",
    )


def _driver_max_cuda(machine: Machine, matrices: Matrices) -> tuple[str | None, str | None]:
    driver = machine.driver_version
    if machine.cuda_version:
        where = f"driver {driver}" if driver else "the driver"
        return machine.cuda_version, (
            f"{where} supports CUDA ≤ {machine.cuda_version} (the CUDA Version it reports)"
        )
    if driver:
        cuda = matrices.max_cuda_for_driver(driver, machine.platform.os)
        if cuda:
            return cuda, f"driver {driver} supports CUDA ≤ {cuda} (NVIDIA's driver table)"
        return None, f"driver {driver} is older than every CUDA release envsetup knows"
    return None, None
