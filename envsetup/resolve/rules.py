"""The rules a build must pass on a machine: the driver (rule 1) and the GPUs' code (rule 2).

`verify` asks the same functions, so a plan and a check never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from envsetup.model.machine import Gpu, Machine
from envsetup.model.variants import Variant, version_tuple
from envsetup.model.visibility import describe_ignored, visible

if TYPE_CHECKING:
    from envsetup.matrices import Matrices
    from envsetup.resolve.context import _Context


def driver_at_least(driver: str, floor: str) -> bool:
    """Compare NVIDIA driver versions numerically ("535.104.05" ≥ "525.60.13")."""
    return version_tuple(driver, 3) >= version_tuple(floor, 3)


def visible_gpus(machine: Machine) -> tuple[tuple[Gpu, ...], tuple[str, ...]]:
    """The GPUs CUDA lets torch see (envsetup.model.visibility's rule), other vendors' GPUs,
    notes."""
    if machine.visible_gpus is None or not machine.nvidia_gpus:
        return machine.gpus, ()  # nothing enumerated: visibility cannot narrow anything
    seen = visible(machine)
    notes = [describe_ignored(seen)] if seen.ignored else []
    others = tuple(gpu for gpu in machine.gpus if gpu.vendor != "nvidia")
    hidden = len(machine.nvidia_gpus) - len(seen.gpus)
    if hidden:
        notes.append(
            f"CUDA_VISIBLE_DEVICES hides {hidden} of {len(machine.nvidia_gpus)} NVIDIA GPU(s); "
            "only the visible ones count"
        )
    return seen.gpus + others, tuple(notes)


def _describe_gpu(gpu: Gpu) -> str:
    name = gpu.name or "unnamed GPU"
    return f"GPU {gpu.index} ({name})"


def driver_floor(matrices: Matrices, variant: Variant, os: str) -> str | None:
    """The minimum driver for a cuXY variant: the MVC floor of its major, else the toolkit's."""
    major = variant.cuda_major
    assert major is not None and variant.cuda is not None
    floor = matrices.minor_compat_floor(major, os)
    return floor if floor is not None else matrices.toolkit_driver(variant.cuda, os)


def _driver_verdict(context: _Context, variant: Variant) -> str | None:
    """Why the driver cannot run `variant`, or None when it can (rule 1)."""
    return driver_verdict(
        context.matrices,
        variant,
        os=context.os,
        driver=context.driver,
        max_cuda=context.max_cuda,
        strict=context.request.policy == "strict",
    )


def driver_verdict(
    matrices: Matrices,
    variant: Variant,
    *,
    os: str,
    driver: str | None,
    max_cuda: str | None,
    strict: bool = False,
) -> str | None:
    """Why a driver cannot run a cuXY build, or None when it can (rule 1).

    A build at or below the CUDA version the driver reports runs natively; above it, only
    through minor-version compatibility within the same major, which needs the major's floor.
    The resolver and `verify` both ask this, so a plan and a check never disagree.
    """
    cuda = version_tuple(variant.cuda or "0.0")[:2]
    floor = driver_floor(matrices, variant, os)
    needs = f"{variant} needs driver ≥ {floor}" if floor else f"{variant} needs a newer driver"
    if max_cuda is not None:
        limit = version_tuple(max_cuda)[:2]
        if cuda <= limit:
            return None
        if strict:
            return f"{variant} is newer than CUDA {max_cuda} (--policy strict)"
        if cuda[0] > limit[0]:
            return needs
    if driver is not None:
        if floor is not None and not driver_at_least(driver, floor):
            return needs
        if floor is None:
            return f"no driver minimum is known for {variant}"
    return None


def _gpu_verdict(
    context: _Context, release: str, variant: Variant
) -> tuple[str | None, tuple[str, ...]]:
    """Why `variant` lacks code for some visible GPU (None when all are covered) + notes."""
    if variant.kind == "cuda":
        gpus = context.nvidia
        archs = context.matrices.arch_list(release, variant.name, context.platform)
        if not gpus:
            return None, ()
        known = [gpu for gpu in gpus if gpu.compute_capability]
        notes = tuple(
            f"compute capability of {_describe_gpu(gpu)} is unknown; cannot check that the "
            "wheel has code for it (pass --compute-cap)"
            for gpu in gpus
            if not gpu.compute_capability
        )
        strict = context.request.policy == "strict"
        if archs is None:
            if known and strict:
                return f"{variant}'s GPU architectures are not recorded (--policy strict)", notes
            if known:
                notes += (
                    f"the GPU architectures of torch {release} {variant} are not recorded; "
                    "cannot confirm it has code for " + _sm_list(known),
                )
            return None, notes
        missing = [gpu for gpu in known if not archs.covers(gpu.compute_capability or "")]
        if missing:
            return f"{variant} lacks code for {_sm_list(missing)}", notes
        if known and strict and not archs.confirmed:
            return (
                f"{variant}'s arch list is inferred, not confirmed (--policy strict refuses "
                "inferred facts)",
                notes,
            )
        return None, notes
    if variant.kind == "rocm":
        targets = context.matrices.rocm_targets(variant.name)
        amd = context.amd
        unknown = tuple(
            f"gfx target of {_describe_gpu(gpu)} is unknown; cannot check {variant} supports it"
            for gpu in amd
            if not gpu.arch
        )
        if targets is None:
            return None, (
                *unknown,
                f"the gfx targets of {variant} are not recorded; cannot confirm it supports "
                + (", ".join(sorted({gpu.arch for gpu in amd if gpu.arch})) or "this GPU"),
            )
        missing_gfx = sorted({gpu.arch for gpu in amd if gpu.arch and gpu.arch not in targets})
        if missing_gfx:
            return f"{variant} lacks {', '.join(missing_gfx)}", unknown
        return None, unknown
    return None, ()


def _sm_list(gpus: Sequence[Gpu]) -> str:
    from envsetup.matrices.schema import arch_name

    names: list[str] = []
    for gpu in gpus:
        sm = arch_name(gpu.compute_capability or "")
        if sm not in names:
            names.append(sm)
    return " and ".join(names)


def _inferred(context: _Context, version: str, variant: Variant) -> tuple[str, ...]:
    """The GPU-code facts a choice of `variant` would rest on that no primary source confirms:
    an arch list marked `confirmed = false`, or none recorded, for GPUs whose arch is known."""
    if variant.kind == "cuda":
        if not any(gpu.compute_capability for gpu in context.nvidia):
            return ()
        archs = context.matrices.arch_list(version, variant.name, context.platform)
        if archs is None:
            return (f"the GPU architectures of torch {version} {variant} are not recorded",)
        if not archs.confirmed:
            return (
                f"the {variant} arch list of torch {version} on {context.platform} is inferred "
                f"({archs.notes or archs.source})",
            )
    elif variant.kind == "rocm" and any(gpu.arch for gpu in context.amd):
        row = context.matrices.rocm_row(variant.name)
        if row is None or not row.gfx:
            return (f"the gfx targets of {variant} are not recorded",)
        if not row.confirmed:
            return (f"the gfx targets of {variant} are inferred ({row.notes or row.source})",)
    return ()


def _wanted(context: _Context, variant: Variant) -> bool:
    if context.forced is not None:
        return variant == context.forced
    return variant.kind == context.target
