"""The CI forms of `envsetup matrix` (`--format github|gitlab`): its flags, read here and
handed to envsetup/integrations/ci_export.py as plain values."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from envsetup.errors import UsageError

__all__ = ["add_format_arguments", "render_format"]


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """`--format`, `--newest`, `--session` and the fleet flags of the CI forms."""
    from envsetup.integrations.ci_export import FORMATS

    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output form: table (default), json, or a CI job matrix: github, gitlab",
    )
    parser.add_argument(
        "--newest",
        type=int,
        default=None,
        metavar="N",
        help="only the N newest torch releases that match the other filters",
    )
    parser.add_argument(
        "--session",
        default="verify",
        help="nox session each CI job runs (default: verify)",
    )
    fleet = parser.add_argument_group("fleet: CI jobs for the build a fleet runs (github, gitlab)")
    fleet.add_argument(
        "--machine", dest="machine_files", metavar="FILE", action="append", default=[]
    )
    fleet.add_argument(
        "--machines", dest="machine_dirs", metavar="DIR", action="append", default=[]
    )
    fleet.add_argument(
        "--runner-label",
        metavar="SM=LABEL",
        action="append",
        default=[],
        help="runner label for the fleet's GPUs of one kind: sm_90=gpu-h100 (default gpu-sm_90)",
    )


def render_format(args: argparse.Namespace) -> str | None:
    """The CI matrix text for `--format github|gitlab`, or None for the verb's own table/json.

    The cells are a fleet's build (`--machine`/`--machines`) or the matrices filtered by
    `--torch`, `--python`, `--variant`, `--platform` and `--newest`.
    """
    from envsetup.integrations import ci_export

    if args.format not in ci_export.CI_FORMATS:
        return None
    render = ci_export.github if args.format == "github" else ci_export.gitlab
    if args.machine_files or args.machine_dirs:
        from envsetup.detect.host import current_platform, python_tag
        from envsetup.model.machine import Platform

        if args.platform is not None:
            os_name, _, arch = args.platform.partition("-")
            platform = Platform(os=os_name, arch=arch, python=args.python or python_tag())
        else:
            platform = current_platform()
        jobs, runners = ci_export.fleet_jobs(
            args.machine_files,
            args.machine_dirs,
            torch=args.torch,
            python=args.python,
            platform=platform,
            labels=_runner_labels(args.runner_label),
        )
        return render(jobs, session=args.session, runners=runners)
    if args.runner_label:
        raise UsageError(
            "--runner-label maps the GPU kinds of a fleet; pass --machine or --machines too"
        )
    from envsetup.integrations.cells import DEFAULT_PLATFORM, cells

    found = cells(
        torch=args.torch,
        python=args.python,
        variants=args.variant,
        platform=args.platform or DEFAULT_PLATFORM,
        newest=args.newest,
    )
    return render(list(found), session=args.session)


def _runner_labels(items: Sequence[str]) -> dict[str, str]:
    """`sm_90=gpu-h100` (or 9.0=gpu-h100) → {"sm_90": "gpu-h100"}; anything else is refused."""
    from envsetup.detect.overrides import normalise_capabilities
    from envsetup.matrices.schema import arch_name

    labels: dict[str, str] = {}
    for item in items:
        kind, _, label = item.partition("=")
        try:
            capabilities = normalise_capabilities(kind.strip())
        except ValueError:
            capabilities = ()
        if len(capabilities) != 1 or not label.strip():
            raise UsageError(
                f"--runner-label {item!r}: expected one GPU kind and a label, e.g. sm_90=gpu-h100"
            )
        labels[arch_name(capabilities[0])] = label.strip()
    return labels
