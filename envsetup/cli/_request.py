"""Machine and request flags shared by `plan`, `install` and `venv` (and machine flags by `verify`).

`install` and `venv` decide what to install exactly as `plan` does, so they accept the same
flags with the same meaning, and one `machine_from_args` builds the machine for all of them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from envsetup import settings
from envsetup.errors import UsageError
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.model.plan import (
    ALLOW_INSECURE_VARIABLE,
    PYTORCH_INDEX_BASE,
    Request,
    insecure_index_allowed,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from envsetup.resolve.fleet import Fleet

__all__ = [
    "add_machine_arguments",
    "add_request_arguments",
    "add_target_argument",
    "fleet_from_args",
    "machine_from_args",
    "request_from_args",
]


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """`--python PATH`: the environment install and verify act on (install/target.py's order)."""
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="interpreter of the target environment (default: the active virtual or conda "
        "environment, else envsetup's own unless that is a pipx/uv tool environment)",
    )


def add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe the machine instead of detecting it (CI planning, tests, broken detection)."""
    machine = parser.add_argument_group("machine (default: detect this one)")
    machine.add_argument("--driver", metavar="VERSION", help="NVIDIA driver, e.g. 535.104.05")
    machine.add_argument("--cuda", metavar="X.Y", help='the driver\'s "CUDA Version", e.g. 12.2')
    machine.add_argument(
        "--compute-cap", metavar="X.Y[,X.Y]", help="compute capability of each GPU: 8.6,9.0"
    )
    machine.add_argument(
        "--nvidia-smi-output", metavar="FILE", help="a saved nvidia-smi output describing it"
    )
    machine.add_argument(
        "--amd-arch",
        action="append",
        metavar="GFX[,GFX]",
        help="gfx target of each AMD GPU, for a machine envsetup cannot probe: gfx1100 "
        "(repeatable; env UV_AMD_GPU_ARCHITECTURE)",
    )
    machine.add_argument("--gpu", choices=("none",), help="treat the machine as having no GPU")
    fleet = parser.add_argument_group("fleet: one build for many machines (see docs/fleets.md)")
    fleet.add_argument(
        "--machine",
        dest="machine_files",
        metavar="FILE",
        action="append",
        default=[],
        help="a node's `envsetup detect --json` (JSON Lines of several) or saved nvidia-smi "
        "output; repeatable",
    )
    fleet.add_argument(
        "--machines",
        dest="machine_dirs",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder of such files, one or more nodes each",
    )
    # installing happens here: the platform is this one (`plan` infers a paste's instead)
    parser.set_defaults(platform=None, paste_platform=False)


#: Flags that describe another machine; any of them turns live detection off.
_MACHINE_FLAGS = (
    "driver",
    "cuda",
    "compute_cap",
    "nvidia_smi_output",
    "platform",
    "gpu",
    "amd_arch",
)


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """What to install: the same request flags as `envsetup plan`."""
    request = parser.add_argument_group("request (as for `envsetup plan`)")
    request.add_argument("--torch", metavar="SPEC", help="torch version or PEP 440 specifier")
    request.add_argument(
        "--with",
        dest="with_",
        metavar="PKGS",
        default="",
        help="companions pinned to the releases built for the chosen torch: torchvision, "
        "torchaudio, torchao, torchcodec, torchdata, torchtext, fbgemm-gpu, torchrec, "
        "torchtune, xformers, triton (matrices/family.toml)",
    )
    request.add_argument(
        "--backend", default="auto", help="auto, cpu, cuda, cuXYZ, rocm, rocmX.Y or xpu"
    )
    request.add_argument(
        "--policy",
        choices=("compat", "strict"),
        default="compat",
        help="compat (default): a CUDA build newer than the driver's maximum is allowed within "
        "its major (minor-version compatibility); strict: only builds <= that maximum",
    )
    request.add_argument(
        "--channel",
        choices=("stable", "test", "nightly"),
        default="stable",
        help="stable (default) releases, test (release candidates) or nightly builds",
    )
    request.add_argument(
        "--index-url-base",
        metavar="URL",
        default=settings.get("ENVSETUP_INDEX_URL") or PYTORCH_INDEX_BASE,
        help="PEP 503 mirror of download.pytorch.org/whl (env ENVSETUP_INDEX_URL)",
    )
    request.add_argument(
        "--find-links-base", metavar="URL", help="mirror with flat per-variant directories"
    )
    request.add_argument(
        "--requirements",
        action="append",
        default=[],
        metavar="FILE",
        help="your pip requirements file (repeatable): its torch specifiers constrain the plan, "
        "the rest is installed after the torch family",
    )
    request.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="DIR[GROUPS]",
        help="a pyproject.toml project: [project] dependencies and optional groups "
        "(all, or those in brackets: DIR[gpu,dev])",
    )
    request.add_argument(
        "--allow-insecure-index",
        action="store_true",
        default=insecure_index_allowed(os.environ),
        help=f"allow http:// index URLs (env {ALLOW_INSECURE_VARIABLE}=1, as for nox and tox)",
    )


def request_from_args(args: argparse.Namespace) -> Request:
    """The Request the flags describe; bad specifiers are usage errors before any probing."""
    from envsetup.resolve.request import parse_companions, torch_pin

    torch_pin(args.torch)
    companions = tuple(part.strip() for part in args.with_.split(",") if part.strip())
    parse_companions(companions)
    user = None
    if getattr(args, "requirements", None) or getattr(args, "project", None):
        from envsetup.resolve.user_requirements import read_user_requirements

        user = read_user_requirements(args.requirements, args.project)
    return Request(
        constraints=()
        if user is None
        else tuple((c.name, c.specifier, c.origin) for c in user.constraints),
        follow_up=() if user is None else user.rest,
        user_notes=() if user is None else user.notes,
        torch=args.torch,
        with_=companions,
        backend=args.backend,
        policy=args.policy,
        channel=args.channel,
        index_url_base=args.index_url_base,
        find_links_base=args.find_links_base,
        allow_insecure_index=args.allow_insecure_index,
    )


def machine_from_args(
    args: argparse.Namespace, target: str | None, *, fleet: Fleet | None = None
) -> tuple[Machine, dict[str, str] | None]:
    """The machine to plan for (detected, or described by the machine flags) and the torch
    builds installed in the target environment, for `target`: a Python version or a path.
    A caller that already read the fleet's files passes it, so they are read once."""
    python, installed = _target_python(target)
    fleet = fleet or fleet_from_args(args)
    if fleet is not None:
        return fleet.combined(python=python), installed
    if not any(getattr(args, name) is not None for name in _MACHINE_FLAGS):
        from envsetup.detect import detect

        machine = detect()
        if python is not None:
            machine = replace(machine, platform=replace(machine.platform, python=python))
        elif installed is None:  # the target is this interpreter's environment
            from envsetup.install.installed import installed_versions

            installed = installed_versions()
        return machine, installed
    return _described(args, python), installed


def fleet_from_args(args: argparse.Namespace) -> Fleet | None:
    """The fleet `--machine`/`--machines` describe (None without them); the single-machine
    flags would contradict it, so they are refused alongside."""
    if not (args.machine_files or args.machine_dirs):
        return None
    flags = (*_MACHINE_FLAGS[:4], "amd_arch")
    given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name)]
    if args.gpu is not None:
        given.append("--gpu")
    if given:
        raise UsageError(
            f"--machine/--machines describe the machines; {', '.join(given)} would contradict them",
            hint="put the facts in the machine files, or plan one machine with the flags alone",
        )
    from envsetup.detect.host import current_platform, python_tag
    from envsetup.resolve.fleet import load

    if args.platform is not None:
        os_name, _, arch = args.platform.partition("-")
        platform = Platform(os=os_name, arch=arch, python=python_tag())
    else:
        platform = current_platform()
    return load(args.machine_files, args.machine_dirs, smi_platform=platform)


def _target_python(value: str | None) -> tuple[str | None, dict[str, str] | None]:
    from envsetup.matrices import PYTHON_RE

    if value is None:
        return None, None
    if PYTHON_RE.fullmatch(value):
        return value, None
    if not (os.sep in value or "/" in value or Path(value).suffix == ".exe" or "python" in value):
        raise UsageError(
            f"--python {value!r} is neither a version like 3.11 / 3.13t nor an interpreter path"
        )
    from envsetup.install.installed import interpreter_facts

    return interpreter_facts(value)


def _described(args: argparse.Namespace, python: str | None) -> Machine:
    """A machine built from flags, for planning a machine other than this one."""
    from envsetup.detect.host import python_tag
    from envsetup.detect.overrides import (
        force_gfx,
        normalise_capabilities,
        normalise_cuda,
        normalise_driver,
        normalise_gfx,
    )
    from envsetup.matrices.gpu_table import check_capabilities

    if args.platform is not None:
        os_name, _, arch = args.platform.partition("-")
        platform = Platform(os=os_name, arch=arch, python=python or python_tag())
    else:
        from envsetup.detect.host import current_platform

        platform = current_platform()
        if python is not None:
            platform = replace(platform, python=python)
    if args.gpu == "none":
        flags = (*_MACHINE_FLAGS[:4], "amd_arch")
        given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name)]
        if given:
            raise UsageError(f"--gpu none contradicts {', '.join(given)}")
        return Machine(platform=platform)
    machine = Machine(platform=platform)
    if args.nvidia_smi_output is not None:
        inferred = args.paste_platform and args.platform is None
        machine = _from_smi(args.nvidia_smi_output, None if inferred else platform)
        if inferred and python is not None:
            machine = replace(machine, platform=replace(machine.platform, python=python))
    driver, cuda, gpus = machine.driver_version, machine.cuda_version, machine.gpus
    try:
        if args.driver is not None:
            driver = normalise_driver(args.driver)
        if args.cuda is not None:
            cuda = normalise_cuda(args.cuda)
        if args.compute_cap is not None:
            caps = normalise_capabilities(args.compute_cap)
            check_capabilities(caps)
            gpus = tuple(Gpu(index=i, compute_capability=cc) for i, cc in enumerate(caps))
        if args.amd_arch:
            targets = tuple(t for text in args.amd_arch for t in normalise_gfx(text))
            gpus = tuple(force_gfx(gpus, targets, "--amd-arch", _ignore))
        else:
            gpus = _gfx_from_environment(gpus)
    except ValueError as error:
        raise UsageError(
            f"invalid machine flag value {str(error)!r}",
            hint="expected --driver 535.104.05, --cuda 12.2, --compute-cap 8.6[,9.0], "
            "--amd-arch gfx1100",
        ) from None
    return replace(machine, driver_version=driver, cuda_version=cuda, gpus=gpus)


def _gfx_from_environment(gpus: tuple[Gpu, ...]) -> tuple[Gpu, ...]:
    """ENVSETUP_AMD_GPU_ARCHITECTURE / UV_AMD_GPU_ARCHITECTURE describe the AMD GPUs of a
    machine given by flags too: they exist for machines that cannot be probed."""
    from envsetup.detect.findings import Findings
    from envsetup.detect.overrides import force_gfx, read_overrides

    forced = read_overrides(os.environ, Findings()).get("amd_arch")
    if forced is None:
        return gpus
    return tuple(force_gfx(gpus, tuple(forced.value), forced.variable, _ignore))


def _ignore(message: str) -> None:
    """Described machines have no AMD GPUs to mismatch: force_gfx never warns for them."""


def _from_smi(path: str, platform: Platform | None) -> Machine:
    from envsetup.detect import machine_from_saved_output

    return machine_from_saved_output(path, platform=platform)
