"""Environment overrides: the user says what the machine is, and that wins over any probe.

Our own variables come first; the ones other tools already read (uv, conda, light-the-torch) are
honoured as fallbacks so a machine set up for those tools behaves the same here. An empty value
counts as unset. A malformed ENVSETUP_* value is a usage error (the user asked for it explicitly);
a malformed fallback is skipped with a warning, since it belongs to another tool's syntax.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from envsetup import settings
from envsetup.detect.findings import Findings, now
from envsetup.errors import UsageError
from envsetup.model.capability import ComputeCapability
from envsetup.model.machine import Gpu, driver_version

#: fact -> variables, in precedence order. The first one set wins.
OVERRIDES: dict[str, tuple[str, ...]] = {
    "backend_override": (
        "ENVSETUP_BACKEND",
        "UV_TORCH_BACKEND",
        "LTT_PYTORCH_COMPUTATION_BACKEND",
    ),
    "driver_version": ("ENVSETUP_CUDA_DRIVER_VERSION", "UV_CUDA_DRIVER_VERSION"),
    "cuda_version": ("ENVSETUP_CUDA_VERSION", "CONDA_OVERRIDE_CUDA"),
    "compute_capability": ("ENVSETUP_COMPUTE_CAP",),
    # uv's variable for a machine it cannot probe (one target; a list is accepted here too)
    "amd_arch": ("ENVSETUP_AMD_GPU_ARCHITECTURE", "UV_AMD_GPU_ARCHITECTURE"),
}

# ASCII digits only (re.ASCII), as for driver versions: "١٢.٤" is no CUDA version.
_CUDA = re.compile(r"(\d{1,2})(?:\.(\d{1,2}))?(?:\.\d+)?", re.ASCII)
#: An LLVM AMDGPU target ("gfx1100", "gfx90a"), optionally with rocminfo's feature suffix
#: (":sramecc+:xnack-"), which says nothing about which wheel runs.
_GFX = re.compile(r"(gfx[0-9a-f]{3,4})(?::[a-z0-9+-]+)*", re.IGNORECASE | re.ASCII)

_EXPECTED = {
    "backend_override": "a variant: cpu, xpu, cuXY (cu121, cu12.1, cuda12.1) or rocmX.Y[.Z]",
    "driver_version": "an NVIDIA driver version such as 550.144.03",
    "cuda_version": "a CUDA version such as 12.4",
    "compute_capability": "compute capabilities such as 8.6 or 8.6,9.0 (one per GPU)",
    "amd_arch": "AMD gfx targets such as gfx1100 or gfx90a,gfx942 (one per GPU)",
}


@dataclass(frozen=True)
class Override:
    """One fact forced from the environment, and the variable that forced it."""

    fact: str
    value: str | tuple[str, ...]
    variable: str


def normalise_backend(text: str) -> str | None:
    """The variant name ("cu121") for any spelling; None for uv's "auto" (= detect)."""
    first = text.split(",", maxsplit=1)[0].strip()  # light-the-torch takes a preference list
    if first.lower() == "auto":
        return None
    from envsetup.model.variants import parse_variant

    return parse_variant(first).name


def normalise_cuda(text: str) -> str:
    """ "12.4" from "12.4", "12", "12.4.1" (conda accepts all three)."""
    match = _CUDA.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    return f"{int(match[1])}.{int(match[2] or 0)}"


def normalise_driver(text: str) -> str:
    """The driver version by `machine.driver_version`'s rule, the one every source obeys."""
    value = driver_version(text)
    if value is None:
        raise ValueError(text)
    return value


def normalise_capabilities(text: str) -> tuple[str, ...]:
    """("8.6", "9.0") from "8.6,9.0", "86 90" or "sm_86"."""
    parts = [part for part in re.split(r"[,;\s]+", text.strip()) if part]
    if not parts:
        raise ValueError(text)
    return tuple(str(ComputeCapability.parse(part)) for part in parts)


def normalise_gfx(text: str) -> tuple[str, ...]:
    """("gfx90a", "gfx1100") from "gfx90a,gfx1100", "GFX1100" or "gfx90a:sramecc+:xnack-"."""
    parts = [part for part in re.split(r"[,;\s]+", text.strip()) if part]
    found = []
    for part in parts:
        match = _GFX.fullmatch(part)
        if match is None:
            raise ValueError(text)
        found.append(match[1].lower())
    if not found:
        raise ValueError(text)
    return tuple(found)


def _normalise(fact: str, text: str) -> str | tuple[str, ...] | None:
    if fact == "backend_override":
        return normalise_backend(text)
    if fact == "driver_version":
        return normalise_driver(text)
    if fact == "cuda_version":
        return normalise_cuda(text)
    if fact == "amd_arch":
        return normalise_gfx(text)
    return normalise_capabilities(text)


def read_overrides(environ: Mapping[str, str], findings: Findings) -> dict[str, Override]:
    """The overrides in force, by fact; each winner and each shadowed variable is recorded."""
    chosen: dict[str, Override] = {}
    for fact, variables in OVERRIDES.items():
        for variable in variables:
            started = now()
            raw = (settings.get(variable, environ) or "").strip()
            if not raw:
                continue
            try:
                value = _normalise(fact, raw)
            except ValueError:
                message = f"{variable}={raw!r} is not {_EXPECTED[fact]}"
                if variable.startswith("ENVSETUP_"):
                    raise UsageError(message, hint=f"fix or unset {variable}") from None
                findings.warn(f"{message}; ignored")
                continue
            if value is None:
                continue
            if fact in chosen:
                findings.warn(
                    f"{variable}={raw} is ignored: {chosen[fact].variable} takes precedence"
                )
                continue
            chosen[fact] = Override(fact, value, variable)
            shown = ",".join(value) if isinstance(value, tuple) else value
            findings.record(fact, shown, f"env {variable}", started)
    return chosen


def force_gfx(
    gpus: Sequence[Gpu], targets: tuple[str, ...], origin: str, warn: Callable[[str], None]
) -> list[Gpu]:
    """The AMD GPUs' gfx targets as the user gives them (--amd-arch, UV_AMD_GPU_ARCHITECTURE):
    one value applies to every AMD GPU, a list to them by position; with no AMD GPU detected the
    list describes the target machine's GPUs (a machine envsetup cannot probe)."""
    amd = [gpu for gpu in gpus if gpu.vendor == "amd"]
    others = [gpu for gpu in gpus if gpu.vendor != "amd"]
    if not amd:
        first = len(others)
        return others + [
            Gpu(index=first + n, vendor="amd", arch=target) for n, target in enumerate(targets)
        ]
    if len(targets) not in (1, len(amd)):
        warn(
            f"{origin} lists {len(targets)} gfx targets for {len(amd)} AMD GPUs; they are "
            "applied by position and the rest keep what was detected"
        )
    if len(targets) == 1:
        targets = targets * len(amd)
    forced = [dataclasses.replace(gpu, arch=target) for gpu, target in zip(amd, targets)]
    return others + forced + amd[len(forced) :]
