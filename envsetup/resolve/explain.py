"""Why a plan is what it is: reasons, warnings, facts, alternatives and failure hints, kept
apart from the search so its wording can change without touching a decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsetup.model.plan import Fact
from envsetup.model.variants import Variant, parse_variant, version_tuple
from envsetup.resolve.context import _Choice
from envsetup.resolve.releases import _candidates, _torch, _variants
from envsetup.resolve.rules import (
    _driver_verdict,
    _gpu_verdict,
    _inferred,
    _sm_list,
    _wanted,
    driver_floor,
)

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices.schema import Release
    from envsetup.resolve.context import _Context


def _explain(context: _Context, version: str, variant: Variant, notes: tuple[str, ...]) -> _Choice:
    reasons: list[str] = []
    warnings: list[str] = list(notes)
    minor_compat = False
    covered = [gpu for gpu in context.nvidia if gpu.compute_capability]
    wheels_have = f" whose wheels include {_sm_list(covered)}" if covered else ""
    if variant.kind == "cuda":
        limit = context.max_cuda
        native = (
            limit is None or version_tuple(variant.cuda or "0.0")[:2] <= version_tuple(limit)[:2]
        )
        if context.forced is not None:
            include = f" and include {_sm_list(covered)}" if covered else ""
            reasons.append(
                f"{variant} as asked: its torch {version} wheels fit the driver{include}"
            )
        elif limit is None:
            reasons.append(f"{variant} is the newest torch {version} CUDA variant{wheels_have}")
        elif native:
            reasons.append(
                f"{variant} is the newest torch {version} variant ≤ {limit}{wheels_have}"
            )
        else:
            reasons.append(
                f"no torch {version} variant ≤ {limit}{wheels_have} fits; {variant} is "
                f"the nearest newer CUDA {variant.cuda_major}.x build"
            )
        floor = driver_floor(context.matrices, variant, context.os)
        if not native:
            minor_compat = True
            warnings.append(
                f"{variant} is newer than the driver's CUDA {limit}: it relies on CUDA "
                f"{variant.cuda_major}.x minor-version compatibility (driver ≥ {floor}); PTX JIT "
                "and run-time compilation (torch.compile/Triton) can need a newer driver; "
                "--policy strict avoids this"
            )
        if context.driver is None and limit is None:
            warnings.append(
                f"the NVIDIA driver version is unknown: {variant} needs driver ≥ {floor} "
                f"on {context.os}; pass --driver to check"
            )
    elif variant.kind == "rocm":
        gfx = sorted({gpu.arch for gpu in context.amd if gpu.arch})
        covers = f" and covers {', '.join(gfx)}" if gfx else ""
        reasons.append(f"{variant} is the newest torch {version} ROCm variant{covers}")
    elif variant.kind == "xpu":
        reasons.append(f"Intel GPU: the xpu build of torch {version}")
    archs = context.matrices.arch_list(version, variant.name, context.platform)
    if archs is not None and not archs.confirmed and covered:
        warnings.append(
            f"the GPU architectures of torch {version} {variant} on {context.platform} are "
            "inferred, not confirmed by a primary source; `envsetup verify` checks them"
        )
    inferred = _inferred(context, version, variant)
    return _Choice(variant, tuple(reasons), tuple(warnings), minor_compat, inferred)


def _failure_message(context: _Context, spec: SpecifierSet | None, skipped: list[str]) -> str:
    what = _torch(spec)
    machine = f"{context.platform}, Python {context.python}"
    if context.driver:
        machine += f", driver {context.driver}"
    gpus = [gpu for gpu in context.nvidia if gpu.compute_capability]
    if gpus:
        machine += f", {_sm_list(gpus)}"
    shown = skipped[:4] + ([f"… and {len(skipped) - 4} older releases"] if len(skipped) > 4 else [])
    return f"no {what} build fits this machine ({machine}):\n  " + "\n  ".join(shown)


def _driver_upgrade(context: _Context, spec: SpecifierSet | None) -> str | None:
    """'upgrade the driver to ≥ N' when only the driver stands between the GPUs and a build."""
    if context.target != "cuda" or context.driver is None:
        return None
    strict = context.request.policy == "strict"
    for release in _candidates(context, spec):
        if context.python not in release.pythons(context.platform):
            continue
        floors = []
        for name in _variants(release, context.platform):
            variant = parse_variant(name)
            if not _wanted(context, variant):
                continue
            if _gpu_verdict(context, str(release.version), variant)[0] is not None:
                continue
            if strict:
                floor = context.matrices.toolkit_driver(variant.cuda or "", context.os)
            else:
                floor = driver_floor(context.matrices, variant, context.os)
            if floor is not None:
                floors.append((version_tuple(floor, 3), floor, variant))
        if floors:
            _, floor, variant = min(floors)
            return f"upgrade the driver to ≥ {floor} for torch {release.version} ({variant})"
    return None


def _facts(context: _Context, release: Release, variant: Variant) -> tuple[Fact, ...]:
    """The matrices rows the plan rests on, each marked confirmed or inferred (JSON "facts")."""
    version = str(release.version)
    relevant = {"variants", f"variants.{context.platform}", "python"}
    doubtful = [name for name in release.unconfirmed if name in relevant]
    facts = [
        Fact(
            f"torch {version} wheels for {context.platform}",
            ", ".join(_variants(release, context.platform)),
            release.sources[0] if release.sources else "matrices/torch.toml",
            release.confirmed and not doubtful,
        )
    ]
    if variant.kind == "cuda":
        archs = context.matrices.arch_list(version, variant.name, context.platform)
        if archs is not None:
            facts.append(
                Fact(
                    f"arch list of torch {version} {variant} on {context.platform}",
                    " ".join(archs.get_arch_list()),
                    archs.source,
                    archs.confirmed,
                )
            )
        major = variant.cuda_major
        compat = next((r for r in context.matrices.minor_compat if r.cuda_major == major), None)
        toolkit = context.matrices.toolkit(variant.cuda or "")
        row = compat if compat is not None and compat.driver(context.os) else toolkit
        if row is not None:
            facts.append(
                Fact(
                    f"minimum driver for {variant} on {context.os}",
                    row.driver(context.os) or "unknown",
                    row.source,
                    row.confirmed,
                )
            )
    elif variant.kind == "rocm":
        rocm = context.matrices.rocm_row(variant.name)
        if rocm is not None:
            facts.append(
                Fact(
                    f"gfx targets of {variant}",
                    " ".join(rocm.gfx) or "not recorded",
                    rocm.source,
                    rocm.confirmed and bool(rocm.gfx),
                )
            )
    return tuple(facts)


def _unconfirmed(context: _Context, release: Release) -> list[str]:
    """Warnings for facts of the chosen release that no primary source confirms."""
    if not release.confirmed:
        return [
            f"torch {release.version}: the matrices cannot confirm its wheels, Pythons or "
            "companions yet; `envsetup verify` after installing"
        ]
    relevant = {"variants", f"variants.{context.platform}", "python"}
    if context.python in release.python_platforms:
        relevant.add("python_platforms")
    fields = [name for name in release.unconfirmed if name in relevant]
    if not fields:
        return []
    return [
        f"torch {release.version}: {', '.join(fields)} not confirmed by a primary source "
        f"(envsetup's torch.toml data; `envsetup matrix --torch {release.version}` shows it)"
    ]


def _alternatives(context: _Context, release: Release, chosen: Variant) -> list[str]:
    version = str(release.version)
    others: list[str] = []
    for name in _variants(release, context.platform):
        variant = parse_variant(name)
        if variant == chosen or variant.kind != chosen.kind:
            continue
        if variant.kind == "cuda" and _driver_verdict(context, variant) is not None:
            continue
        if _gpu_verdict(context, version, variant)[0] is None:
            inferred = " (arch list inferred)" if _inferred(context, version, variant) else ""
            others.append(f"torch {version} {variant}{inferred}: --backend {variant}")
    if chosen.kind != "cpu" and "cpu" in _variants(release, context.platform):
        others.append(f"torch {version} CPU build: --backend cpu")
    return others
