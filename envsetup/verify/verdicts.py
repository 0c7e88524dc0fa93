"""Turn what the in-environment check saw, plus what we know of the machine, into verdicts.

Each rule targets one error users meet and search for ("Torch not compiled with CUDA enabled",
"driver ... too old", "no kernel image is available", "operator torchvision::nms does not exist")
and says, on failure, why it happens here and which command fixes it. Torch's own error text is
quoted when the check caught it; otherwise the verdict is predicted from the machine's facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envsetup.errors import UsageError
from envsetup.matrices import load
from envsetup.matrices.schema import ArchList, arch_name
from envsetup.model.machine import Gpu, Machine
from envsetup.model.variants import Variant, parse_variant, version_tuple
from envsetup.resolve.request import parse_torch_spec
from envsetup.resolve.rules import driver_verdict, visible_gpus

__all__ = ["Check", "Expectation", "build_variant", "diagnose"]

_INSTALL = "install the build the planner picks for this machine: {fix}"


@dataclass(frozen=True)
class Check:
    """One verdict: `fix` is set only when the check failed."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Expectation:
    """`--expect torch==2.5.1` and `--expect-variant cu121`: the build that should be there."""

    torch: str | None = None  # a PEP 440 specifier for torch ("==2.5.1")
    variant: str | None = None  # canonical variant name ("cu121")

    @classmethod
    def parse(cls, torch: str | None, variant: str | None) -> Expectation:
        """Validate user input; bad values are usage errors (exit 2)."""
        spec = None
        if torch is not None:
            # The same reading as `--torch`: 2.5.1 → ==2.5.1, 2.5 → ==2.5.*, or a specifier.
            try:
                spec = str(parse_torch_spec(torch)) if torch.strip() else ""
            except UsageError:
                spec = ""
            if not spec:
                raise UsageError(
                    f"--expect {torch!r} is not a torch requirement",
                    hint="write it like torch==2.5.1, torch>=2.4, 2.5 or 2.5.1",
                )
        name = None
        if variant is not None:
            try:
                name = parse_variant(variant).name
            except ValueError as error:
                raise UsageError(f"--expect-variant: {error}") from None
        return cls(spec, name)


def build_variant(torch: dict[str, Any]) -> str:
    """The variant of an installed torch: its local label, else what it was compiled with."""
    _, _, label = str(torch.get("version", "")).partition("+")
    try:
        return parse_variant(label).name
    except ValueError:
        pass
    if torch.get("cuda"):
        major, minor = version_tuple(str(torch["cuda"]))[:2]
        return Variant("cuda", (major, minor)).name
    if torch.get("hip"):
        return Variant("rocm", version_tuple(str(torch["hip"]))[:2]).name
    return label or "cpu"


def _gpu_names(gpus: tuple[Gpu, ...]) -> str:
    names = [gpu.name or f"GPU {gpu.index}" for gpu in gpus]
    return ", ".join(names)


@dataclass(frozen=True)
class _Facts:
    """The parts of the check's report every rule reads."""

    version: str
    cuda: str | None
    hip: str | None
    init_error: str | None
    devices: list[dict[str, Any]]
    arch_list: list[str]
    round_trips: list[dict[str, Any]]

    @classmethod
    def read(cls, facts: dict[str, Any]) -> _Facts:
        torch = facts["torch"]
        return cls(
            version=str(torch["version"]),
            cuda=torch.get("cuda"),
            hip=torch.get("hip"),
            init_error=facts.get("cuda_init_error"),
            devices=list(facts.get("devices") or []),
            arch_list=list(facts.get("arch_list") or []),
            round_trips=list(facts.get("round_trips") or []),
        )

    def failed_with(self, fragment: str) -> str | None:
        """The first error torch raised that contains `fragment`, verbatim."""
        errors = [self.init_error, *(trip.get("error") for trip in self.round_trips)]
        return next((error for error in errors if error and fragment in error), None)


def diagnose(
    facts: dict[str, Any],
    *,
    machine: Machine | None,
    expect: Expectation,
    require_gpu: bool,
    fix: str | None,
) -> list[Check]:
    """Every verdict about one environment, in the order a person would check them."""
    install = _INSTALL.format(fix=fix) if fix else "reinstall torch for this machine"
    torch = facts.get("torch")
    if not torch:
        error = facts.get("torch_error", "torch is not installed")
        return [Check("import", False, f"`import torch` failed: {error}", install)]
    seen = _Facts.read(facts)
    checks: list[Check | None] = [
        Check("import", True, f"torch {seen.version} imports from {torch.get('file')}"),
        _build(seen),
        _gpu_build(seen, machine, install),
        _driver(seen, machine, install),
        _kernels(seen, machine, install),
    ]
    companions = facts.get("companions") or {}
    checks += [_companion(name, info, seen, fix) for name, info in companions.items()]
    if expect.torch or expect.variant:
        checks.append(_expected(seen, expect, install))
    checks += [_round_trip(trip, install) for trip in seen.round_trips]
    checks.append(_devices(seen, machine, require_gpu, install))
    return [check for check in checks if check is not None]


def _build(seen: _Facts) -> Check:
    compiled = (
        f"CUDA {seen.cuda}" if seen.cuda else f"ROCm/HIP {seen.hip}" if seen.hip else "CPU only"
    )
    variant = build_variant({"version": seen.version, "cuda": seen.cuda, "hip": seen.hip})
    return Check("build", True, f"torch {seen.version}: variant {variant}, {compiled}")


def _gpu_build(seen: _Facts, machine: Machine | None, install: str) -> Check:
    """A CPU-only torch on a machine with a GPU: "Torch not compiled with CUDA enabled"."""
    if machine is None:
        return Check("gpu_build", True, "machine not inspected; nothing to compare the build with")
    nvidia, amd = machine.nvidia_gpus, machine.amd_gpus
    if nvidia and not seen.cuda:
        quoted = seen.failed_with("not compiled") or "Torch not compiled with CUDA enabled"
        return Check(
            "gpu_build",
            False,
            f"this machine has {len(nvidia)} NVIDIA GPU(s) ({_gpu_names(nvidia)}) but torch "
            f"{seen.version} has no CUDA support, so torch.cuda.is_available() is False and "
            f'.to("cuda") fails with "{quoted}"',
            install,
        )
    if amd and not seen.hip and not nvidia:
        return Check(
            "gpu_build",
            False,
            f"this machine has an AMD GPU ({_gpu_names(amd)}) but torch {seen.version} is not a "
            "ROCm build",
            install,
        )
    if nvidia or amd:
        return Check("gpu_build", True, "the build matches the machine's GPU vendor")
    gpu_build = " (its GPU code stays unused)" if seen.cuda or seen.hip else ""
    return Check("gpu_build", True, f"no GPU on this machine; torch runs on the CPU{gpu_build}")


def _driver(seen: _Facts, machine: Machine | None, install: str) -> Check | None:
    """torch's CUDA newer than the driver supports: "driver version is insufficient"."""
    if not seen.cuda:
        return None
    quoted = seen.failed_with("too old") or seen.failed_with("insufficient")
    have = machine.cuda_version if machine else None
    driver = f"driver {machine.driver_version}" if machine and machine.driver_version else "driver"
    upgrade = f"update the NVIDIA driver, or {install}"
    if quoted:
        limit = f" (supports CUDA ≤ {have})" if have else ""
        return Check(
            "driver",
            False,
            f"torch {seen.version} needs CUDA {seen.cuda}; the {driver}{limit} is too old: "
            f'"{quoted}"',
            upgrade,
        )
    if have is None and (machine is None or machine.driver_version is None):
        return Check("driver", True, f"torch needs CUDA {seen.cuda}; driver version unknown")
    assert machine is not None
    build = parse_variant(f"cuda{seen.cuda}")
    verdict = driver_verdict(
        load(),
        build,
        os=machine.platform.os,
        driver=machine.driver_version,
        max_cuda=have,
    )
    limit = f" supports CUDA ≤ {have}" if have else ""
    if verdict is None:
        native = have is not None and version_tuple(seen.cuda)[:2] <= version_tuple(have)[:2]
        if native:
            return Check("driver", True, f"{driver}{limit}; torch was built with {seen.cuda}")
        return Check(
            "driver",
            True,
            f"{driver}{limit}; torch was built with {seen.cuda}: it runs through NVIDIA's "
            "minor-version compatibility (PTX JIT and run-time compilation may still need a "
            "newer driver)",
        )
    return Check(
        "driver",
        False,
        f"torch {seen.version} needs CUDA {seen.cuda} but the {driver}{limit} cannot run it "
        f'({verdict}); "CUDA driver version is insufficient for CUDA runtime version" follows '
        "on first use",
        upgrade,
    )


def _kernels(seen: _Facts, machine: Machine | None, install: str) -> Check | None:
    """A GPU whose compute capability the wheel has no code for: "no kernel image"."""
    if not seen.cuda:
        return None
    quoted = seen.failed_with("no kernel image")
    gpus = [
        (str(device.get("name")), ".".join(str(part) for part in device["capability"]))
        for device in seen.devices
        if device.get("capability")
    ]
    if not gpus and machine is not None:
        gpus = [
            (gpu.name or f"GPU {gpu.index}", gpu.compute_capability)
            for gpu in machine.nvidia_gpus
            if gpu.compute_capability
        ]
    if not seen.arch_list or not gpus:
        if quoted:
            return Check("arch", False, f'torch failed on the GPU: "{quoted}"', install)
        return None
    archs = ArchList.from_torch(seen.arch_list)
    shown = " ".join(seen.arch_list)
    missing = [f"{name} ({arch_name(cc)})" for name, cc in gpus if not archs.covers(cc)]
    if missing or quoted:
        why = f'; torch raises "{quoted}"' if quoted else ""
        return Check(
            "arch",
            False,
            f"torch {seen.version} has no kernels for {', '.join(missing) or 'this GPU'}: its "
            f"wheel carries {shown}{why}",
            install,
        )
    listed = ", ".join(f"{name} {arch_name(cc)}" for name, cc in gpus)
    return Check("arch", True, f"kernels for every GPU ({listed}) in: {shown}")


def _same_release(pin: str, version: str) -> bool:
    """Whether torch `version` satisfies a companion's `torch==pin` (local label only if pinned)."""
    try:
        return SpecifierSet(f"=={pin}").contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return pin == version


def _companion(name: str, info: dict[str, Any], seen: _Facts, fix: str | None) -> Check:
    """A companion that imports, loads its compiled ops, and was built for this exact torch."""
    check = f"companion:{name}"
    installed = str(info.get("installed"))
    pin = info.get("torch_pin")
    built_for = f"built for torch {pin}" if pin else "built for another torch"
    release = seen.version.split("+")[0]
    how = fix or f"envsetup install --with {name} --torch {release} --yes"
    repin = f"reinstall torch and {name} as a pair from one index: {how}"
    if info.get("error"):
        return Check(
            check,
            False,
            f"{name} {installed} is broken: {info['error']} — it is {built_for}, installed "
            f"torch is {seen.version}",
            repin,
        )
    variant = build_variant({"version": seen.version, "cuda": seen.cuda, "hip": seen.hip})
    _, _, label = installed.partition("+")
    if (pin and not _same_release(pin, seen.version)) or (label and label != variant):
        return Check(
            check,
            False,
            f"{name} {installed} is {built_for} ({label or 'no'} variant), installed torch is "
            f"{seen.version} ({variant})",
            repin,
        )
    ops = "; compiled ops (nms) load" if info.get("ops") else ""
    return Check(check, True, f"{name} {installed} matches torch {seen.version}{ops}")


def _expected(seen: _Facts, expect: Expectation, install: str) -> Check:
    variant = build_variant({"version": seen.version, "cuda": seen.cuda, "hip": seen.hip})
    problems = []
    if expect.torch and not SpecifierSet(expect.torch).contains(seen.version, prereleases=True):
        problems.append(f"torch {seen.version} does not match {expect.torch}")
    if expect.variant and expect.variant != variant:
        problems.append(f"variant {variant} is not the expected {expect.variant}")
    wanted = " ".join(part for part in (expect.torch, expect.variant) if part)
    if problems:
        return Check("expect", False, "; ".join(problems), install)
    return Check("expect", True, f"torch {seen.version} ({variant}) is the expected {wanted}")


def _round_trip(trip: dict[str, Any], install: str) -> Check:
    device = trip.get("device", "?")
    name = f"round_trip:{device}"
    if trip.get("ok"):
        return Check(
            name,
            True,
            f"tensor + Linear(32, 8) on {device} match the CPU result "
            f"(max |diff| {trip.get('max_abs_diff', 0.0):.2g})",
        )
    if trip.get("error"):
        return Check(name, False, f"compute on {device} failed: {trip['error']}", install)
    return Check(
        name,
        False,
        f"results on {device} differ from the CPU (max |diff| {trip.get('max_abs_diff')}): "
        "the device computes wrong numbers",
        "check the GPU with the vendor's diagnostics (nvidia-smi -q, dcgmi diag)",
    )


def _devices(seen: _Facts, machine: Machine | None, require_gpu: bool, install: str) -> Check:
    if seen.devices:
        listed = "; ".join(f"{d['device']} {d.get('name')}" for d in seen.devices)
        return Check("devices", True, f"{len(seen.devices)} GPU(s) usable: {listed}")
    why = f" ({seen.init_error})" if seen.init_error else ""
    detail = f"no usable GPU{why}; torch runs on the CPU"
    if not require_gpu:
        return Check("devices", True, detail)
    detail += " and --require-gpu needs one"
    if machine is None or not machine.gpus:
        return Check("devices", False, detail, "run this on a machine with a GPU")
    if machine.visible_gpus is not None and not visible_gpus(machine)[0]:
        # Reinstalling would not help: the GPUs are there, the environment hides them.
        shown = ",".join(machine.visible_gpus)
        return Check(
            "devices",
            False,
            f"{detail}; CUDA_VISIBLE_DEVICES={shown!r} hides all {len(machine.gpus)} GPU(s)",
            "unset CUDA_VISIBLE_DEVICES, or set it to the GPUs to use (CUDA_VISIBLE_DEVICES=0)",
        )
    return Check("devices", False, detail, install)
