"""Machine and request flags shared by `plan`, `install` and `venv` (and machine flags by `verify`).

`install` and `venv` decide what to install exactly as `plan` does, so they accept the same
flags with the same meaning; the machine is built by `plan`'s own code from the same namespace.
"""

from __future__ import annotations

import argparse
import os

from envsetup.machine import Machine
from envsetup.plan import (
    ALLOW_INSECURE_VARIABLE,
    PYTORCH_INDEX_BASE,
    Request,
    insecure_index_allowed,
)

__all__ = [
    "add_machine_arguments",
    "add_request_arguments",
    "machine_from_args",
    "request_from_args",
]


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
    machine.add_argument("--gpu", choices=("none",), help="treat the machine as having no GPU")
    parser.set_defaults(platform=None)  # installing happens here: the platform is this one


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """What to install: the same request flags as `envsetup plan`."""
    request = parser.add_argument_group("request (as for `envsetup plan`)")
    request.add_argument("--torch", metavar="SPEC", help="torch version or PEP 440 specifier")
    request.add_argument(
        "--with",
        dest="with_",
        metavar="PKGS",
        default="",
        help="companions pinned to the paired versions: torchvision,torchaudio",
    )
    request.add_argument(
        "--backend", default="auto", help="auto, cpu, cuda, cuXYZ, rocm, rocmX.Y or xpu"
    )
    request.add_argument("--policy", choices=("compat", "strict"), default="compat")
    request.add_argument("--channel", choices=("stable", "test", "nightly"), default="stable")
    request.add_argument(
        "--index-url-base",
        metavar="URL",
        default=os.environ.get("ENVSETUP_INDEX_URL") or PYTORCH_INDEX_BASE,
        help="PEP 503 mirror of download.pytorch.org/whl (env ENVSETUP_INDEX_URL)",
    )
    request.add_argument(
        "--find-links-base", metavar="URL", help="mirror with flat per-variant directories"
    )
    request.add_argument(
        "--allow-insecure-index",
        action="store_true",
        default=insecure_index_allowed(os.environ),
        help=f"allow http:// index URLs (env {ALLOW_INSECURE_VARIABLE}=1, as for nox and tox)",
    )


def request_from_args(args: argparse.Namespace) -> Request:
    """The Request the flags describe; bad specifiers are usage errors before any probing."""
    from envsetup.resolve import parse_companions, torch_pin

    torch_pin(args.torch)
    companions = tuple(part.strip() for part in args.with_.split(",") if part.strip())
    parse_companions(companions)
    return Request(
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
    args: argparse.Namespace, python: str | None
) -> tuple[Machine, dict[str, str] | None]:
    """(machine, installed torch-family builds) for target `python` (a version or a path)."""
    from envsetup.commands.plan import _machine

    return _machine(argparse.Namespace(**{**vars(args), "python": python}))
