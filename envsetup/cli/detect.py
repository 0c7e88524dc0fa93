"""`envsetup detect`: what this machine is (or what a saved nvidia-smi output describes), where
each fact came from, and what looks wrong. Reads only; never imports torch."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

from envsetup.cli._types import seconds
from envsetup.detect.findings import source_of
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.terminal import printable

HELP = "Show this machine's GPUs, driver and maximum CUDA version, and where each fact came from."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--nvidia-smi-output",
        metavar="FILE",
        help="describe the machine from a saved nvidia-smi output (any format; - for stdin) "
        "instead of probing this one",
    )
    parser.add_argument(
        "--platform",
        metavar="OS-ARCH",
        help="the pasted machine's platform (linux-x86_64, windows-amd64, ...; default: the "
        "one the paste shows, else this machine's)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show how long each probe took"
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="longest wait for nvidia-smi or rocm_agent_enumerator (default 5)",
    )


def run(args: argparse.Namespace) -> int:
    if args.nvidia_smi_output is not None:
        from envsetup.detect import machine_from_saved_output

        machine = machine_from_saved_output(
            args.nvidia_smi_output, platform=_platform(args.platform)
        )
    else:
        from envsetup.detect import detect

        machine = detect(timeout=args.timeout)
    if args.json:
        print(json.dumps(machine.to_json(), indent=2))
    else:
        print(printable("\n".join(summary(machine, verbose=args.verbose))))
    return 0


def _platform(value: str | None) -> Platform | None:
    """`--platform` for a paste: checked here, so plain `detect` never loads the matrices."""
    if value is None:
        return None
    from envsetup.detect.host import python_tag
    from envsetup.errors import UsageError
    from envsetup.matrices import PLATFORMS

    if value not in PLATFORMS:
        raise UsageError(f"--platform {value!r}: expected one of {', '.join(PLATFORMS)}")
    os_name, _, arch = value.partition("-")
    return Platform(os=os_name, arch=arch, python=python_tag())


def _from(machine: Machine, fact: str, value: object) -> str:
    source = source_of(machine.evidence, fact, value)
    return f"  (from {source})" if source else ""


def _gpu_line(gpu: Gpu) -> str:
    parts = [gpu.name or ("AMD GPU" if gpu.vendor == "amd" else "GPU (name unknown)")]
    if gpu.memory_mib is not None:
        parts.append(f"{gpu.memory_mib} MiB")
    if gpu.compute_capability:
        parts.append(f"compute capability {gpu.compute_capability}")
    if gpu.arch:
        parts.append(gpu.arch)
    if gpu.mig_enabled:
        parts.append(f"MIG on, {len(gpu.mig_devices)} instance(s)")
    return f"{'GPU ' + str(gpu.index):<12}" + ", ".join(parts)


def summary(machine: Machine, *, verbose: bool = False) -> Iterator[str]:
    """The human report: facts first, then where they came from, then what looks wrong."""
    platform = machine.platform
    described = f"{platform.key}, Python {platform.python}"
    described += f", {platform.libc}" if platform.libc else ""
    described += ", WSL" if platform.wsl else ""
    yield f"platform    {described}" + _from(machine, "platform", platform.key)
    if machine.driver_version:
        yield (
            f"driver      NVIDIA {machine.driver_version}"
            + _from(machine, "driver_version", machine.driver_version)
        )
    if machine.cuda_version:
        yield (
            f"max CUDA    {machine.cuda_version}"
            + _from(machine, "cuda_version", machine.cuda_version)
        )
    for gpu in machine.gpus:
        yield _gpu_line(gpu)
    listed = source_of(machine.evidence, "gpus", len(machine.nvidia_gpus))
    if machine.nvidia_gpus and listed:
        yield f"            (GPUs listed by {listed})"
    if not machine.gpus:
        yield "GPUs        none found" + (": Apple MPS available" if machine.mps else "")
    elif machine.mps:
        yield "MPS         available (Apple silicon)"
    if machine.xpu:
        yield "XPU         Intel discrete GPU on the PCI bus (known device ids only)"
    if machine.visible_gpus is not None:
        shown = ",".join(machine.visible_gpus) or "none"
        yield f"visible     {shown}  (CUDA_VISIBLE_DEVICES)"
    if machine.backend_override:
        yield (
            f"backend     {machine.backend_override}"
            + _from(machine, "backend_override", machine.backend_override)
        )
    overridden = [item for item in machine.evidence if item.source.startswith("env ")]
    for item in overridden:
        if item.fact not in ("backend_override", "visible_gpus"):
            yield f"override    {item.fact} = {item.value}  ({item.source})"
    costs: dict[str, float] = {}
    for item in machine.evidence:
        costs.setdefault(item.source, item.ms)
    if costs and verbose:
        yield "probes      " + "; ".join(f"{source} {ms:.2f} ms" for source, ms in costs.items())
    for warning in machine.warnings:
        yield f"warning:    {warning}"
    for problem in machine.errors:
        yield f"error:      [{problem.kind}] {problem.message}"
        if problem.hint:
            yield f"  hint:     {problem.hint}"
    if not machine.errors:
        yield "next:       `envsetup plan` says which PyTorch build to install"
